<?php
declare(strict_types=1);

namespace Fr\Bridge;

/**
 * No final answer in time: either the shim's own error "timeout" (a request got no final result
 * within its "wait"; getRequestId() then names the command, which may still run and shows up in
 * the audit later) or the client's local deadline passed (getShimCode() is null).
 */
class TimeoutException extends FrException
{
    public function __construct(
        string $message,
        ?string $shimCode = null,
        ?string $shimMessage = null,
        ?array $raw = null,
        private readonly ?string $requestId = null,
    ) {
        parent::__construct($message, $shimCode, $shimMessage, $raw);
    }

    /** The command id (UUID) frAroundWeb gave the request, when known. */
    public function getRequestId(): ?string
    {
        return $this->requestId;
    }
}
