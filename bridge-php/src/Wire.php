<?php
declare(strict_types=1);

namespace Fr\Bridge;

/**
 * @internal The transport of Client: one non-blocking stream, newline-delimited JSON lines,
 * every wait bounded by a deadline (stream_select). It knows nothing about ids or operations.
 */
final class Wire
{
    /** Longest line accepted from the server (the shim's own max_line is at most 16 MiB). */
    public const MAX_LINE = 16 << 20;

    private string $buf = '';

    /** @param resource $stream a connected stream; Wire owns it and closes it in close(). */
    public function __construct(private $stream)
    {
        stream_set_blocking($this->stream, false);
        // No PHP-side read buffer: stream_select must see every byte that has not been read.
        stream_set_read_buffer($this->stream, 0);
    }

    /** Connects to "tcp://host:port" or "unix:///path"; ConnectionException on failure. */
    public static function connect(string $address, float $timeout): self
    {
        $errno = 0;
        $errstr = '';
        // stream_socket_client warns as well as returning false: the exception says it all.
        $s = @stream_socket_client($address, $errno, $errstr, $timeout, STREAM_CLIENT_CONNECT);
        if ($s === false) {
            throw new ConnectionException(sprintf('cannot connect to the shim at %s: %s (errno %d)',
                $address, $errstr !== '' ? $errstr : 'connection failed', $errno));
        }
        return new self($s);
    }

    public static function now(): float
    {
        return hrtime(true) / 1e9;
    }

    public function close(): void
    {
        if (is_resource($this->stream)) {
            fclose($this->stream);
        }
        $this->buf = '';
    }

    /** Encodes one request line (JSON + "\n"); slashes and UTF-8 left as they are. */
    public static function encode(array $obj): string
    {
        try {
            return json_encode($obj, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR) . "\n";
        } catch (\JsonException $e) {
            throw new FrException('cannot encode the request as JSON: ' . $e->getMessage(), null, null, null, $e);
        }
    }

    /**
     * Decodes one line from the server (without its "\n"): it must be a JSON object with an
     * "id" that is a string, an integer or null, and if it has "ok" it must be a boolean.
     */
    public static function decode(string $line): array
    {
        if (str_ends_with($line, "\r")) {
            $line = substr($line, 0, -1);
        }
        try {
            $v = json_decode($line, true, 512, JSON_THROW_ON_ERROR);
        } catch (\JsonException $e) {
            throw new ProtocolException(sprintf('the shim sent a line that is not JSON (%s): %s',
                $e->getMessage(), self::excerpt($line)), null, null, null, $e);
        }
        if (!is_array($v) || ($v !== [] && array_is_list($v)) || ($v === [] && trim($line) !== '{}')) {
            throw new ProtocolException('the shim sent a line that is not a JSON object: ' . self::excerpt($line));
        }
        if (!array_key_exists('id', $v)) {
            throw new ProtocolException('the shim sent a line without an id: ' . self::excerpt($line));
        }
        if (!is_int($v['id']) && !is_string($v['id']) && $v['id'] !== null) {
            throw new ProtocolException('the shim sent a line whose id is neither string nor integer: ' . self::excerpt($line));
        }
        if (array_key_exists('ok', $v) && !is_bool($v['ok'])) {
            throw new ProtocolException('the shim sent a line whose "ok" is not a boolean: ' . self::excerpt($line));
        }
        if (!array_key_exists('ok', $v) && !isset($v['event'])) {
            throw new ProtocolException('the shim sent a line that is neither a final answer nor an event: ' . self::excerpt($line));
        }
        return $v;
    }

    /** A short printable excerpt of a line or value for error messages. */
    public static function excerpt(mixed $v): string
    {
        if (!is_string($v)) {
            $v = json_encode($v, JSON_UNESCAPED_SLASHES | JSON_PARTIAL_OUTPUT_ON_ERROR | JSON_INVALID_UTF8_SUBSTITUTE) ?: '?';
        }
        $s = substr($v, 0, 200);
        $s = preg_replace('/[^\x20-\x7e]/', '?', $s) ?? '?';
        return strlen($v) > 200 ? $s . '...' : $s;
    }

    /** Writes all of $data before $deadline (absolute, Wire::now() scale). */
    public function write(string $data, float $deadline): void
    {
        while ($data !== '') {
            $this->waitFor(true, $deadline, 'sending to the shim');
            $n = @fwrite($this->stream, $data);
            if ($n === false) {
                throw new ConnectionException('the connection to the shim broke while sending');
            }
            $data = (string) substr($data, $n);
            if ($data !== '') {
                // A peer that streams to us while we block on writing would fill both buffers
                // and wait forever: keep reading into the buffer meanwhile.
                $this->fill(false);
            }
        }
    }

    /**
     * The next complete line, decoded, waiting at most until $deadline: TimeoutException
     * (local, no shim code) when it passes, ConnectionException when the server closes.
     */
    public function readLine(float $deadline): array
    {
        while (true) {
            $nl = strpos($this->buf, "\n");
            if ($nl !== false) {
                $line = substr($this->buf, 0, $nl);
                $this->buf = (string) substr($this->buf, $nl + 1);
                if (trim($line) === '') {
                    throw new ProtocolException('the shim sent an empty line');
                }
                return self::decode($line);
            }
            if (strlen($this->buf) > self::MAX_LINE) {
                throw new ProtocolException(sprintf('the shim sent a line longer than %d bytes', self::MAX_LINE));
            }
            $this->waitFor(false, $deadline, 'waiting for the shim');
            if (!$this->fill(true)) {
                throw new ConnectionException($this->buf === ''
                    ? 'the shim closed the connection'
                    : 'the shim closed the connection in the middle of a line: ' . self::excerpt($this->buf));
            }
        }
    }

    /** Reads what is there into the buffer; false on end of stream (only checked if $eofIsEnd). */
    private function fill(bool $eofIsEnd): bool
    {
        $d = @fread($this->stream, 65536);
        if ($d === false) {
            throw new ConnectionException('the connection to the shim broke while reading');
        }
        if ($d === '') {
            return !($eofIsEnd && feof($this->stream));
        }
        $this->buf .= $d;
        return true;
    }

    private function waitFor(bool $write, float $deadline, string $what): void
    {
        while (true) {
            $left = $deadline - self::now();
            if ($left <= 0) {
                throw new TimeoutException(sprintf('timed out %s', $what));
            }
            $r = $write ? [] : [$this->stream];
            $w = $write ? [$this->stream] : [];
            $e = [];
            $sec = is_finite($left) ? (int) floor($left) : null;
            $usec = is_finite($left) ? (int) (($left - floor($left)) * 1e6) : null;
            $n = @stream_select($r, $w, $e, $sec, $usec);
            if ($n === false) {
                continue;   // EINTR (a signal): try again with what is left
            }
            if ($n > 0) {
                return;
            }
        }
    }
}
