<?php
declare(strict_types=1);

namespace Fr\Bridge;

/** One message of a subscription (or a cached value from getMessage()). */
final class Message
{
    /**
     * @param mixed $payload the decoded JSON value if the MQTT payload was JSON, else the string
     * @param array $raw the shim's whole line
     */
    public function __construct(
        public readonly string $topic,
        public readonly mixed $payload,
        public readonly bool $retained,
        public readonly array $raw = [],
    ) {
    }

    public static function fromLine(array $line): self
    {
        if (!isset($line['topic']) || !is_string($line['topic']) || !array_key_exists('payload', $line)) {
            throw new ProtocolException('message without topic or payload: ' . Wire::excerpt($line));
        }
        return new self($line['topic'], $line['payload'], ($line['retained'] ?? false) === true, $line);
    }
}
