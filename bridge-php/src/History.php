<?php
declare(strict_types=1);

namespace Fr\Bridge;

/**
 * A sensor's recorded values, the answer of Client::history() (docs/shim.md "history").
 * Raw points are [ts_ms, value] (value a number or a string); buckets are
 * [start_ms, mean, min, max] of the numbers recorded in [start, start + resolution).
 */
final class History
{
    /**
     * @param string|int $resolution "raw", or the bucket width in ms
     * @param list<array> $points oldest first
     */
    public function __construct(
        public readonly string $home,
        public readonly string $ctl,
        public readonly string $sensor,
        public readonly int $from,
        public readonly int $to,
        public readonly string|int $resolution,
        public readonly array $points,
    ) {
    }

    /** The newest point, or null when there is none. */
    public function last(): ?array
    {
        return $this->points === [] ? null : $this->points[count($this->points) - 1];
    }

    public function isRaw(): bool
    {
        return $this->resolution === 'raw';
    }

    /** @param list<array> $points every part's points, then the final line's */
    public static function fromLines(array $final, array $points): self
    {
        $res = $final['resolution'] ?? null;
        foreach (['home', 'ctl', 'sensor'] as $k) {
            if (!is_string($final[$k] ?? null)) {
                throw new ProtocolException("history answer without '$k': " . Wire::excerpt($final));
            }
        }
        if (!is_int($final['from'] ?? null) || !is_int($final['to'] ?? null)
            || !($res === 'raw' || is_int($res)) || !is_int($final['count'] ?? null)) {
            throw new ProtocolException('history answer without from, to, resolution or count: ' . Wire::excerpt($final));
        }
        if ($final['count'] !== count($points)) {
            throw new ProtocolException(sprintf('history answer: count %d but %d points came',
                $final['count'], count($points)));
        }
        return new self($final['home'], $final['ctl'], $final['sensor'], $final['from'],
            $final['to'], $res, $points);
    }
}
