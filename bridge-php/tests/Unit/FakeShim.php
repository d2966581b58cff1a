<?php
declare(strict_types=1);

namespace Fr\Bridge\Tests\Unit;

use Fr\Bridge\Client;
use Fr\Bridge\TimeoutException;

/**
 * A tiny in-process stand-in for the shim, for the cases a real frAroundWeb cannot be made to
 * produce (garbage bytes, a line cut by a close, lines for unknown ids, a fixed interleaving).
 * PHP is single-threaded, so the fake cannot answer while the client waits: its lines are
 * written ahead into the socket, and the client reads them when it calls. The connection is
 * opened by a first ping that times out (nobody answers yet); that ping used id 1, so the
 * calls of a test use ids 2, 3, ...
 */
final class FakeShim
{
    /** @var resource */
    private $server;
    /** @var resource|null */
    private $conn = null;

    public function __construct()
    {
        $s = stream_socket_server('tcp://127.0.0.1:0', $errno, $errstr);
        if ($s === false) {
            throw new \RuntimeException("fake shim: $errstr");
        }
        $this->server = $s;
    }

    public function __destruct()
    {
        $this->close();
        fclose($this->server);
    }

    public function address(): string
    {
        return 'tcp://' . stream_socket_get_name($this->server, false);
    }

    /** A client (no token) whose connection is already accepted by the fake. */
    public function client(float $timeout = 0.2): Client
    {
        $c = new Client($this->address(), null, $timeout);
        try {
            $c->ping();
            throw new \LogicException('the fake answered a ping it never saw');
        } catch (TimeoutException) {
            // expected: the connection is open now
        }
        $conn = stream_socket_accept($this->server, 5);
        if ($conn === false) {
            throw new \RuntimeException('fake shim: no connection');
        }
        $this->conn = $conn;
        stream_set_timeout($this->conn, 5);
        $ping = $this->received();
        if ($ping !== ['id' => 1, 'op' => 'ping']) {
            throw new \LogicException('fake shim: unexpected first line ' . json_encode($ping));
        }
        return $c;
    }

    /** Writes raw bytes to the client. */
    public function write(string $bytes): void
    {
        fwrite($this->conn, $bytes);
    }

    /** Writes JSON lines to the client. */
    public function lines(array ...$objs): void
    {
        foreach ($objs as $o) {
            $this->write(json_encode($o, JSON_UNESCAPED_SLASHES) . "\n");
        }
    }

    /** The next line the client sent, decoded (objects as arrays). */
    public function received(): array
    {
        $l = fgets($this->conn);
        if ($l === false) {
            throw new \RuntimeException('fake shim: nothing received');
        }
        return json_decode($l, true, 512, JSON_THROW_ON_ERROR);
    }

    /** The next line the client sent, raw. */
    public function receivedRaw(): string
    {
        return (string) fgets($this->conn);
    }

    public function close(): void
    {
        if ($this->conn !== null) {
            fclose($this->conn);
            $this->conn = null;
        }
    }
}
