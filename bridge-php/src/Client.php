<?php
declare(strict_types=1);

namespace Fr\Bridge;

/**
 * A client of frAroundWeb's shim (docs/shim.md): newline-delimited JSON over TCP or a unix
 * socket. One connection, opened on first use and authenticated with the token; every request
 * carries an id and every line read is dispatched by id, so the stream events of a subscription
 * and the answers of calls made while iterating it can interleave on the same connection.
 *
 * Not safe to share between processes (after pcntl_fork, make a new Client in the child).
 */
final class Client
{
    private ?Wire $wire = null;
    private int $nextId = 1;
    /** Bumped on every (re)connect: subscriptions of an older connection are dead. */
    private int $generation = 0;
    /** @var array<int|string, list<array>> lines read for an id nobody has taken yet */
    private array $inbox = [];
    /** @var array<int|string, true> ids whose lines are wanted; lines for other ids are dropped */
    private array $live = [];
    private ?string $user = null;
    /** @var list<string> */
    private array $homes = [];
    private ?int $mqttVersion = null;

    /**
     * @param string $address "tcp://127.0.0.1:7420", "unix:///run/fr/shim.sock" (a bare
     *                        "host:port" means tcp://)
     * @param string|null $token the user's token; null = do not authenticate (only ping works)
     * @param float $timeout seconds: connecting, and every call that has no timeout of its own
     */
    public function __construct(
        private readonly string $address = 'tcp://127.0.0.1:7420',
        private readonly ?string $token = null,
        private readonly float $timeout = 5.0,
    ) {
        if ($timeout <= 0) {
            throw new \InvalidArgumentException('timeout must be positive');
        }
    }

    public function __destruct()
    {
        $this->close();
    }

    /** Closes the connection (the next call opens a new one). Open subscriptions end. */
    public function close(): void
    {
        $this->wire?->close();
        $this->wire = null;
        $this->inbox = [];
        $this->live = [];
    }

    /** The authenticated user's name (connects and authenticates if needed). */
    public function user(): ?string
    {
        $this->wire();
        return $this->user;
    }

    /** @return list<string> the homes granted to the user */
    public function homes(): array
    {
        $this->wire();
        return $this->homes;
    }

    /**
     * The MQTT version frAroundWeb speaks with the broker (5, or 4 = 3.1.1), as of this
     * connection's auth; null while it does not know yet (version "auto", not yet connected).
     */
    public function mqttVersion(): ?int
    {
        $this->wire();
        return $this->mqttVersion;
    }

    /** Round trip; returns the shim's clock (Unix ms). */
    public function ping(): int
    {
        $r = $this->call(['op' => 'ping']);
        return (int) ($r['time'] ?? 0);
    }

    /**
     * Publishes to fr/<home>/ctl/<ctl>/cmd or fr/<home>/display of a granted home (anything
     * else: ForbiddenException). An array payload is sent as JSON.
     */
    public function publish(string $topic, string|array $payload, int $qos = 1, bool $retain = false): void
    {
        $this->call(['op' => 'publish', 'topic' => $topic, 'payload' => self::jsonValue($payload),
            'qos' => $qos, 'retain' => $retain]);
    }

    /**
     * The cached (retained) payload of a topic: the decoded JSON value if it is JSON, else the
     * string. NotFoundException if nothing is cached.
     */
    public function get(string $topic): mixed
    {
        return $this->getMessage($topic)->payload;
    }

    /** Like get(), with the topic and the retained flag. */
    public function getMessage(string $topic): Message
    {
        return Message::fromLine($this->call(['op' => 'get', 'topic' => $topic]));
    }

    /**
     * The granted homes with their status and controllers (status, info, state), as in
     * docs/shim.md "list"; only $home if given.
     *
     * @return list<array{home: string, status: ?string, controllers: list<array>}>
     */
    public function list(?string $home = null): array
    {
        $req = ['op' => 'list'];
        if ($home !== null) {
            $req['home'] = $home;
        }
        $r = $this->call($req);
        if (!is_array($r['homes'] ?? null)) {
            throw new ProtocolException('list answer without homes: ' . Wire::excerpt($r));
        }
        return $r['homes'];
    }

    /**
     * Runs an action and returns the controller's final result. A status other than "ok" is a
     * Result, not an exception (also "offline" when the shim knows the controller is offline).
     *
     * @param array $args argument values (strings, numbers, booleans)
     * @param float|null $timeout seconds: the action's time limit for this request (it can only
     *        shorten the action's own timeout). An action that runs past it is killed and the
     *        Result has status "timeout".
     * @param callable|null $onProgress fn(string $event, array $line) for the "accepted" and
     *        "started" stream events
     * @param float|null $wait seconds the shim waits for the final result (default: timeout + 5,
     *        or 30); past it: TimeoutException with getRequestId() (the action may still finish;
     *        the audit shows how). The request's deadline comes from it (docs/topics.md, the
     *        request profile: 2 s before, or half of a wait under 4 s), so a controller that
     *        stays away is a Result "offline" before the wait ends.
     * @throws TimeoutException no final result within $wait (shim) or $wait + the client
     *         timeout (local)
     * @throws ForbiddenException home not granted
     */
    public function request(
        string $home,
        string $ctl,
        string $action,
        array $args = [],
        ?float $timeout = null,
        ?callable $onProgress = null,
        ?float $wait = null,
    ): Result {
        $req = ['op' => 'request', 'home' => $home, 'ctl' => $ctl, 'action' => $action,
            'args' => (object) $args];
        if ($timeout !== null) {
            $req['timeout'] = $timeout;
        }
        if ($wait !== null) {
            $req['wait'] = $wait;
        }
        // The shim answers "timeout" itself when its wait is over; the local deadline only
        // catches a shim that stopped answering.
        $shimWait = $wait ?? ($timeout !== null ? $timeout + 5 : 30.0);
        $deadline = Wire::now() + $shimWait + $this->timeout;
        $id = $this->send($req, $deadline);
        try {
            while (true) {
                $line = $this->next($id, $deadline, $this->generation);
                if (!array_key_exists('ok', $line)) {
                    if ($onProgress !== null && is_string($line['event'] ?? null)) {
                        $onProgress($line['event'], $line);
                    }
                    continue;
                }
                if ($line['ok'] === true) {
                    return Result::fromLine($line);
                }
                if (self::errorCode($line) === 'offline') {
                    return Result::offline($line, self::errorMessage($line));
                }
                throw self::error($line, 'request ' . $home . '/' . $ctl . '/' . $action);
            }
        } finally {
            unset($this->live[$id], $this->inbox[$id]);
        }
    }

    /**
     * Subscribes to an MQTT filter within a granted home (fr/<home>/...) and yields Message
     * objects as they arrive, retained ones first. The subscription is made before this returns
     * (ForbiddenException etc. are thrown here). It ends when the generator is destroyed:
     * breaking out of `foreach ($client->subscribe(...) as $m)` unsubscribes; a generator kept in
     * a variable unsubscribes when it is unset.
     *
     * @param float|null $idleTimeout seconds without a message after which the generator throws
     *        TimeoutException; null waits for ever
     * @return \Generator<int, Message>
     */
    public function subscribe(string $filter, ?float $idleTimeout = null): \Generator
    {
        $deadline = Wire::now() + $this->timeout;
        $id = $this->send(['op' => 'subscribe', 'filter' => $filter], $deadline);
        try {
            $first = $this->next($id, $deadline, $this->generation);
        } catch (\Throwable $e) {
            unset($this->live[$id], $this->inbox[$id]);
            throw $e;
        }
        if (array_key_exists('ok', $first)) {
            unset($this->live[$id], $this->inbox[$id]);
            if ($first['ok'] === false) {
                throw self::error($first, 'subscribe ' . $filter);
            }
            throw new ProtocolException('subscription ended before it started: ' . Wire::excerpt($first));
        }
        if ($first['event'] !== 'subscribed') {
            unset($this->live[$id], $this->inbox[$id]);
            throw new ProtocolException('expected "subscribed", got: ' . Wire::excerpt($first));
        }
        return $this->stream(new Subscription($this, $id, $this->generation), $idleTimeout);
    }

    /**
     * The user's own audit records, newest first (docs/shim.md "audit").
     *
     * @return list<array>
     */
    /**
     * A sensor's recorded values (docs/shim.md "history"): raw points or buckets, at most
     * $maxPoints, for [$from, $to] in Unix ms (defaults: the last 24 hours). A long answer
     * comes in parts; they are put together here.
     *
     * @throws ForbiddenException the home is not granted
     * @throws NotFoundException the server records no history
     */
    public function history(
        string $home,
        string $ctl,
        string $sensor,
        ?int $from = null,
        ?int $to = null,
        int $maxPoints = 1000,
        ?float $timeout = null,
    ): History {
        $req = ['op' => 'history', 'home' => $home, 'ctl' => $ctl, 'sensor' => $sensor,
            'max_points' => $maxPoints];
        if ($from !== null) {
            $req['from'] = $from;
        }
        if ($to !== null) {
            $req['to'] = $to;
        }
        $deadline = Wire::now() + ($timeout ?? $this->timeout);
        $id = $this->send($req, $deadline);
        $points = [];
        try {
            while (true) {
                $line = $this->next($id, $deadline, $this->generation);
                if (!is_array($line['points'] ?? [])) {
                    throw new ProtocolException('history: points not a list: ' . Wire::excerpt($line));
                }
                if (!array_key_exists('ok', $line)) {
                    if (($line['event'] ?? null) === 'points') {
                        array_push($points, ...$line['points']);
                    }
                    continue;
                }
                if ($line['ok'] !== true) {
                    throw self::error($line, "history $home/$ctl/$sensor");
                }
                array_push($points, ...($line['points'] ?? []));
                return History::fromLines($line, $points);
            }
        } finally {
            unset($this->live[$id], $this->inbox[$id]);
        }
    }

    public function audit(int $limit = 50): array
    {
        $r = $this->call(['op' => 'audit', 'limit' => $limit]);
        if (!is_array($r['records'] ?? null)) {
            throw new ProtocolException('audit answer without records: ' . Wire::excerpt($r));
        }
        return $r['records'];
    }

    /** @internal the body of subscribe(): the Subscription unsubscribes when it is released. */
    private function stream(Subscription $sub, ?float $idleTimeout): \Generator
    {
        try {
            while (true) {
                $deadline = $idleTimeout === null ? INF : Wire::now() + $idleTimeout;
                $line = $this->next($sub->id, $deadline, $sub->generation);
                if (array_key_exists('ok', $line)) {
                    $sub->ended();
                    if ($line['ok'] === false) {
                        throw self::error($line, 'subscription');
                    }
                    return;
                }
                if ($line['event'] === 'message') {
                    yield Message::fromLine($line);
                }
            }
        } finally {
            $sub->close();
        }
    }

    /**
     * @internal Ends subscription $id (called by Subscription). Waits, bounded by the client
     * timeout, for the end of the stream so no message of it is read after this returns. Never
     * throws: it runs from destructors.
     */
    public function unsubscribe(int $id, int $generation): void
    {
        if ($this->wire === null || $generation !== $this->generation || !isset($this->live[$id])) {
            return;
        }
        try {
            $deadline = Wire::now() + $this->timeout;
            $uid = $this->send(['op' => 'unsubscribe', 'sub' => $id], $deadline);
            try {
                while (!array_key_exists('ok', $this->next($id, $deadline, $generation))) {
                    // messages that were already on their way: dropped
                }
                $this->next($uid, $deadline, $generation);
            } finally {
                unset($this->live[$uid], $this->inbox[$uid]);
            }
        } catch (\Throwable) {
            // The connection broke or the shim is slow: the subscription dies with the
            // connection, and lines for it are dropped from now on.
        } finally {
            unset($this->live[$id], $this->inbox[$id]);
        }
    }

    /** The connection, opened and authenticated if needed. */
    private function wire(): Wire
    {
        if ($this->wire !== null) {
            return $this->wire;
        }
        $address = str_contains($this->address, '://') ? $this->address : 'tcp://' . $this->address;
        $this->wire = Wire::connect($address, $this->timeout);
        $this->generation++;
        $this->inbox = [];
        $this->live = [];
        if ($this->token !== null) {
            try {
                $r = $this->call(['op' => 'auth', 'token' => $this->token]);
            } catch (\Throwable $e) {
                // A refused token leaves nothing worth keeping: the next call starts afresh.
                $this->close();
                throw $e;
            }
            $this->user = is_string($r['user'] ?? null) ? $r['user'] : null;
            $this->homes = is_array($r['homes'] ?? null) ? array_values($r['homes']) : [];
            $v = $r['mqtt_version'] ?? null;
            $this->mqttVersion = $v === 4 || $v === 5 ? $v : null;
        }
        return $this->wire;
    }

    /** Sends a request with a new id; returns the id (its lines are collected from now on). */
    private function send(array $req, float $deadline): int
    {
        $wire = $this->wire();
        $id = $this->nextId++;
        $req = ['id' => $id] + $req;
        $this->live[$id] = true;
        try {
            $wire->write(Wire::encode($req), $deadline);
        } catch (ConnectionException | TimeoutException $e) {
            $this->fault($e);
        }
        return $id;
    }

    /** One call with a single final answer: the answer if ok, else the mapped exception. */
    private function call(array $req, ?float $timeout = null): array
    {
        $deadline = Wire::now() + ($timeout ?? $this->timeout);
        $id = $this->send($req, $deadline);
        try {
            while (true) {
                $line = $this->next($id, $deadline, $this->generation);
                if (!array_key_exists('ok', $line)) {
                    continue;   // no op with a single answer streams: ignore unknown events
                }
                if ($line['ok'] === true) {
                    return $line;
                }
                throw self::error($line, (string) $req['op']);
            }
        } finally {
            unset($this->live[$id], $this->inbox[$id]);
        }
    }

    /**
     * The next line for $id, reading (and dispatching lines of other ids to their inboxes)
     * until one arrives or $deadline passes.
     */
    private function next(int $id, float $deadline, int $generation): array
    {
        while (true) {
            if ($generation !== $this->generation || $this->wire === null) {
                throw new ConnectionException('the connection to the shim was lost; the stream ended');
            }
            if (!empty($this->inbox[$id])) {
                return array_shift($this->inbox[$id]);
            }
            try {
                $line = $this->wire->readLine($deadline);
            } catch (TimeoutException $e) {
                throw new TimeoutException(sprintf('no answer from the shim at %s within the deadline', $this->address));
            } catch (ConnectionException | ProtocolException $e) {
                $this->fault($e);
            }
            $lid = $line['id'];
            if ($lid === null) {
                // An error about a line the shim could not read (none of ours should be): it
                // cannot be matched to a call, so the caller waiting now hears it.
                if (($line['ok'] ?? null) === false) {
                    $e = self::error($line, 'connection');
                    if (self::errorCode($line) === 'too_long') {
                        $this->close();
                    }
                    throw $e;
                }
                continue;
            }
            if (isset($this->live[$lid])) {
                $this->inbox[$lid][] = $line;
            }
            // else: a late answer to a call given up on (local timeout) or an ended stream
        }
    }

    /** Drops a broken connection and rethrows what broke it. */
    private function fault(\Throwable $e): never
    {
        $this->close();
        throw $e;
    }

    private static function jsonValue(string|array $payload): mixed
    {
        // An empty PHP array is meant as an empty JSON object more often than as a list.
        return $payload === [] ? new \stdClass() : $payload;
    }

    private static function errorCode(array $line): ?string
    {
        $c = $line['error']['code'] ?? null;
        return is_string($c) ? $c : null;
    }

    private static function errorMessage(array $line): string
    {
        $m = $line['error']['message'] ?? null;
        return is_string($m) ? $m : '';
    }

    /** The exception for a final error line of the shim. */
    private static function error(array $line, string $what): FrException
    {
        $code = self::errorCode($line);
        $msg = self::errorMessage($line);
        if ($code === null) {
            return new ProtocolException($what . ': error answer without an error code: ' . Wire::excerpt($line));
        }
        $text = sprintf('%s: shim error %s: %s', $what, $code, $msg !== '' ? $msg : '(no message)');
        return match ($code) {
            'auth' => new AuthException($text, $code, $msg, $line),
            'forbidden' => new ForbiddenException($text, $code, $msg, $line),
            'not_found' => new NotFoundException($text, $code, $msg, $line),
            'timeout' => new TimeoutException($text, $code, $msg, $line,
                is_string($line['request'] ?? null) ? $line['request'] : null),
            default => new FrException($text, $code, $msg, $line),
        };
    }
}
