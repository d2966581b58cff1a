<?php
declare(strict_types=1);

namespace Fr\Bridge;

/**
 * Base of every error the bridge throws. When the shim answered with an error line, its code
 * ("auth", "forbidden", "not_found", "timeout", "offline", "bad_request", "too_many",
 * "too_long", "internal") and message are kept, and the exception message names both.
 */
class FrException extends \RuntimeException
{
    public function __construct(
        string $message,
        private readonly ?string $shimCode = null,
        private readonly ?string $shimMessage = null,
        private readonly ?array $raw = null,
        ?\Throwable $previous = null,
    ) {
        parent::__construct($message, 0, $previous);
    }

    /** The shim's error code, or null when the error did not come from an error line. */
    public function getShimCode(): ?string
    {
        return $this->shimCode;
    }

    public function getShimMessage(): ?string
    {
        return $this->shimMessage;
    }

    /** The shim's whole error line as decoded JSON, or null. */
    public function getRaw(): ?array
    {
        return $this->raw;
    }
}
