<?php
declare(strict_types=1);

namespace Fr\Bridge\Tests\Unit;

use Fr\Bridge\ConnectionException;
use Fr\Bridge\FrException;
use Fr\Bridge\Message;
use Fr\Bridge\ProtocolException;
use Fr\Bridge\TimeoutException;
use Fr\Bridge\Wire;
use PHPUnit\Framework\TestCase;

/**
 * Line parsing and dispatch. Everything a real shim does is tested end to end
 * (tests/E2E, run by tests/integration/07-php-bridge.sh); these use the in-process FakeShim
 * ONLY for what a real frAroundWeb cannot be made to send: bytes that are not the protocol,
 * a connection cut in the middle of a line, lines for ids nobody asked for, a fixed
 * interleaving of two streams, and a late answer after the client's own deadline.
 */
final class ClientDispatchTest extends TestCase
{
    /** @return array<string, array{string}> */
    public static function garbageLines(): array
    {
        return [
            'not json' => ['hello, not json'],
            'truncated json' => ['{"id":1,"ok":tr'],
            'invalid utf-8' => ["{\"id\":1,\"ok\":true,\"x\":\"\xff\xfe\"}"],
            'array' => ['[1,2,3]'],
            'scalar' => ['42'],
            'string' => ['"id"'],
            'empty object' => ['{}'],
            'no id' => ['{"ok":true}'],
            'id is an object' => ['{"id":{"a":1},"ok":true}'],
            'id is a float' => ['{"id":1.5,"ok":true}'],
            'ok is not a boolean' => ['{"id":1,"ok":"yes"}'],
            'neither final nor event' => ['{"id":1,"hello":true}'],
        ];
    }

    /** @dataProvider garbageLines */
    public function testDecodeRejectsGarbage(string $line): void
    {
        $this->expectException(ProtocolException::class);
        Wire::decode($line);
    }

    public function testDecodeAcceptsProtocolLines(): void
    {
        $this->assertSame(['id' => 7, 'ok' => true], Wire::decode('{"id":7,"ok":true}'));
        $this->assertSame(['id' => 'a', 'event' => 'accepted'], Wire::decode("{\"id\":\"a\",\"event\":\"accepted\"}\r"));
        $this->assertNull(Wire::decode('{"id":null,"ok":false,"error":{"code":"bad_request","message":"x"}}')['id']);
    }

    public function testEncodeKeepsSlashesAndUnicodeAndEmptyArgsAreAnObject(): void
    {
        $this->assertSame("{\"topic\":\"fr/h/ctl/k/cmd\",\"t\":\"é\",\"args\":{}}\n",
            Wire::encode(['topic' => 'fr/h/ctl/k/cmd', 't' => 'é', 'args' => (object) []]));
    }

    public function testGarbageFromTheServerIsAProtocolExceptionAndClosesTheConnection(): void
    {
        $fake = new FakeShim();
        $c = $fake->client();
        $fake->write("\x00\x01garbage\xff\n");
        try {
            $c->get('fr/home1/status');
            $this->fail('no ProtocolException');
        } catch (ProtocolException $e) {
            $this->assertStringContainsString('not JSON', $e->getMessage());
            $this->assertStringContainsString('garbage', $e->getMessage());
            $this->assertNull($e->getShimCode());
        }
        // The client dropped the connection: the fake sees end of stream after the get line.
        $this->assertSame('get', $fake->received()['op']);
        $this->assertSame('', $fake->receivedRaw());
    }

    public function testAnErrorLineWithoutACodeIsAProtocolException(): void
    {
        $fake = new FakeShim();
        $c = $fake->client();
        $fake->lines(['id' => 2, 'ok' => false, 'error' => 'something']);
        $this->expectException(ProtocolException::class);
        $c->get('fr/home1/status');
    }

    public function testARequestAnswerWithoutAResultIsAProtocolException(): void
    {
        $fake = new FakeShim();
        $c = $fake->client();
        $fake->lines(['id' => 2, 'ok' => true]);
        $this->expectException(ProtocolException::class);
        $c->request('home1', 'kitchen', 'lamp_on');
    }

    public function testConnectionCutInTheMiddleOfALine(): void
    {
        $fake = new FakeShim();
        $c = $fake->client();
        $fake->write('{"id":2,"ok":tr');
        $fake->close();
        $this->expectException(ConnectionException::class);
        $this->expectExceptionMessage('in the middle of a line');
        $c->list();
    }

    public function testLateAnswerAfterALocalTimeoutIsDropped(): void
    {
        $fake = new FakeShim();
        $c = $fake->client();   // its ping (id 1) timed out locally: no shim code
        $fake->lines(['id' => 1, 'ok' => true, 'time' => 1],          // late answer to the ping
            ['id' => 99, 'event' => 'message', 'topic' => 'x', 'payload' => 1],  // nobody's id
            ['id' => 2, 'ok' => true, 'topic' => 'fr/home1/status', 'payload' => 'online', 'retained' => true]);
        $this->assertSame('online', $c->get('fr/home1/status'));
        $this->assertSame(['id' => 2, 'op' => 'get', 'topic' => 'fr/home1/status'], $fake->received());
    }

    public function testLocalTimeoutHasNoShimCode(): void
    {
        $fake = new FakeShim();
        $c = $fake->client();
        try {
            $c->audit();
            $this->fail('no TimeoutException');
        } catch (TimeoutException $e) {
            $this->assertNull($e->getShimCode());
            $this->assertNull($e->getRequestId());
        }
    }

    public function testAnErrorWithNullIdReachesTheWaitingCaller(): void
    {
        $fake = new FakeShim();
        $c = $fake->client();
        $fake->lines(['id' => null, 'ok' => false, 'error' => ['code' => 'bad_request', 'message' => 'unreadable line']]);
        try {
            $c->list();
            $this->fail('no FrException');
        } catch (FrException $e) {
            $this->assertSame('bad_request', $e->getShimCode());
            $this->assertStringContainsString('shim error bad_request: unreadable line', $e->getMessage());
        }
    }

    /**
     * A subscription's messages and a request's events and final line interleaved on one
     * connection, in an order fixed here (a real shim interleaves them too, but in whatever
     * order the broker and controller make): each reaches its own consumer, in order.
     */
    public function testInterleavedStreamsAreDispatchedById(): void
    {
        $fake = new FakeShim();
        $c = $fake->client(2.0);
        $fake->lines(['id' => 2, 'event' => 'subscribed']);
        $sub = $c->subscribe('fr/home1/ctl/kitchen/#', 2.0);
        $this->assertSame(['id' => 2, 'op' => 'subscribe', 'filter' => 'fr/home1/ctl/kitchen/#'], $fake->received());

        $fake->lines(
            ['id' => 2, 'event' => 'message', 'topic' => 'fr/home1/ctl/kitchen/state/temp', 'payload' => ['value' => 21.5], 'retained' => true],
            ['id' => 3, 'event' => 'accepted', 'request' => 'u-1'],
            ['id' => 2, 'event' => 'message', 'topic' => 'fr/home1/ctl/kitchen/cmd', 'payload' => 'raw text', 'retained' => false],
            ['id' => 3, 'event' => 'started', 'request' => 'u-1'],
            ['id' => 3, 'ok' => true, 'request' => 'u-1', 'result' => ['status' => 'failed', 'exit_code' => 4,
                'signal' => null, 'duration_ms' => 12, 'stdout' => '', 'stderr' => "bad\n", 'reason' => 'exit code 4']],
            ['id' => 2, 'event' => 'message', 'topic' => 'fr/home1/ctl/kitchen/state/hum', 'payload' => 40, 'retained' => false],
        );
        $events = [];
        $r = $c->request('home1', 'kitchen', 'fail', [], 5, function (string $ev) use (&$events): void {
            $events[] = $ev;
        });
        $sent = $fake->received();
        $this->assertSame(3, $sent['id']);
        $this->assertSame([], $sent['args']);   // {} on the wire, decoded by the fake as []
        $this->assertSame(5, $sent['timeout']);
        $this->assertSame(['accepted', 'started'], $events);
        $this->assertSame('failed', $r->status);
        $this->assertSame(4, $r->exitCode);
        $this->assertSame('exit code 4', $r->reason);
        $this->assertSame('u-1', $r->requestId);

        $got = [];
        foreach ($sub as $m) {
            $this->assertInstanceOf(Message::class, $m);
            $got[] = [$m->topic, $m->payload, $m->retained];
            if (count($got) === 3) {
                // The unsubscribe (id 4) is answered before the break destroys the generator.
                $fake->lines(['id' => 2, 'event' => 'message', 'topic' => 'late', 'payload' => 0, 'retained' => false],
                    ['id' => 2, 'ok' => true, 'ended' => 'unsubscribed'], ['id' => 4, 'ok' => true]);
                break;
            }
        }
        $this->assertSame([
            ['fr/home1/ctl/kitchen/state/temp', ['value' => 21.5], true],
            ['fr/home1/ctl/kitchen/cmd', 'raw text', false],
            ['fr/home1/ctl/kitchen/state/hum', 40, false],
        ], $got);
        unset($sub);
        $this->assertSame(['id' => 4, 'op' => 'unsubscribe', 'sub' => 2], $fake->received());
        // The connection is fine afterwards.
        $fake->lines(['id' => 5, 'ok' => true, 'time' => 123]);
        $this->assertSame(123, $c->ping());
    }

    public function testConnectFailureIsAConnectionException(): void
    {
        $fake = new FakeShim();
        $addr = $fake->address();
        unset($fake);   // nothing listens there any more
        $c = new \Fr\Bridge\Client($addr, 'token', 1.0);
        $this->expectException(ConnectionException::class);
        $this->expectExceptionMessage('cannot connect to the shim at ' . $addr);
        $c->ping();
    }
}
