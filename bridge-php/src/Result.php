<?php
declare(strict_types=1);

namespace Fr\Bridge;

/**
 * The final result of a request, as the controller (or frMhs) reported it (docs/topics.md,
 * "Replies"). A status other than "ok" is a result, not an exception: "failed" (exitCode /
 * signal / reason), "timeout" (the action ran past its timeout and was killed), "rejected",
 * "expired", "busy", "unknown_action", "offline", "lost".
 */
final class Result
{
    /**
     * @param array $raw the whole final line of the shim: {"id":..,"ok":true,"request":..,"result":{..}}
     */
    public function __construct(
        public readonly string $status,
        public readonly ?int $exitCode,
        public readonly ?int $signal,
        public readonly ?int $durationMs,
        public readonly string $stdout,
        public readonly string $stderr,
        public readonly ?string $reason,
        public readonly ?string $requestId,
        public readonly bool $duplicate,
        public readonly array $raw,
    ) {
    }

    /** Builds a Result from the shim's final line; ProtocolException if it has no result object. */
    public static function fromLine(array $line): self
    {
        $r = $line['result'] ?? null;
        if (!is_array($r) || !isset($r['status']) || !is_string($r['status'])) {
            throw new ProtocolException('request answer without a result object: ' . Wire::excerpt($line));
        }
        $int = static fn ($v): ?int => is_int($v) ? $v : (is_float($v) ? (int) $v : null);
        $str = static fn ($v): string => is_string($v) ? $v : '';
        $req = $line['request'] ?? ($r['id'] ?? null);
        return new self(
            $r['status'],
            $int($r['exit_code'] ?? null),
            $int($r['signal'] ?? null),
            $int($r['duration_ms'] ?? null),
            $str($r['stdout'] ?? null),
            $str($r['stderr'] ?? null),
            isset($r['reason']) && is_string($r['reason']) ? $r['reason'] : null,
            is_string($req) ? $req : null,
            ($r['duplicate'] ?? false) === true,
            $line,
        );
    }

    /** A request the shim refused as "offline" (controller known offline): made a Result too. */
    public static function offline(array $line, string $reason): self
    {
        return new self('offline', null, null, null, '', '', $reason, null, false, $line);
    }

    public function isOk(): bool
    {
        return $this->status === 'ok';
    }

    /** The controller's result object (docs/topics.md), or [] for a shim-made offline result. */
    public function result(): array
    {
        return is_array($this->raw['result'] ?? null) ? $this->raw['result'] : [];
    }
}
