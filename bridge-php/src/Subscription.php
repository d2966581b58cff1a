<?php
declare(strict_types=1);

namespace Fr\Bridge;

/**
 * @internal Held by the generator of Client::subscribe(): when the generator is destroyed
 * (also one that was never iterated) this object is released and unsubscribes.
 */
final class Subscription
{
    private bool $open = true;

    public function __construct(
        private readonly Client $client,
        public readonly int $id,
        public readonly int $generation,
    ) {
    }

    public function __destruct()
    {
        $this->close();
    }

    /** The shim ended the stream itself: nothing to unsubscribe. */
    public function ended(): void
    {
        $this->open = false;
    }

    public function close(): void
    {
        if ($this->open) {
            $this->open = false;
            $this->client->unsubscribe($this->id, $this->generation);
        }
    }
}
