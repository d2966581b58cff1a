<?php
declare(strict_types=1);

namespace Fr\Bridge\Tests\E2E;

use Fr\Bridge\AuthException;
use Fr\Bridge\Client;
use Fr\Bridge\ConnectionException;
use Fr\Bridge\ForbiddenException;
use Fr\Bridge\FrException;
use Fr\Bridge\History;
use Fr\Bridge\Message;
use Fr\Bridge\NotFoundException;
use Fr\Bridge\TimeoutException;
use PHPUnit\Framework\TestCase;

/**
 * End to end against a REAL stack (tests/integration/07-php-bridge.sh starts mosquitto, frMhs,
 * frMhc "kitchen" and frAroundWeb and sets the environment):
 *   FR_SHIM        tcp://127.0.0.1:PORT of the shim      (unset: the whole class is skipped)
 *   FR_SHIM_UNIX   unix://PATH of the shim's unix socket  (optional)
 *   FR_TOKEN       a token granting FR_HOME
 *   FR_HOME        home1;  FR_CTL  kitchen;  FR_OTHER_HOME  a home not granted (default home2)
 * The controller must have the actions lamp_on (prints "on"), lamp (the demo's: state
 * on|off|toggle, prints the new state; the same lamp as lamp_on), fail (exit 4, "bad" on stderr)
 * and slow (sleep {secs}), and the sensors "temp" and "lamp" (the lamp's state).
 */
final class ClientE2ETest extends TestCase
{
    private static string $shim;
    private static string $token;
    private static string $home;
    private static string $ctl;
    private Client $c;

    public static function setUpBeforeClass(): void
    {
        $shim = getenv('FR_SHIM');
        if ($shim === false || $shim === '') {
            // The only skip: a developer's plain `phpunit` without a running stack. The
            // integration script always sets FR_SHIM and fails on any skipped test.
            self::markTestSkipped('FR_SHIM is not set (run tests/integration/07-php-bridge.sh)');
        }
        self::$shim = $shim;
        self::$token = (string) getenv('FR_TOKEN');
        self::$home = getenv('FR_HOME') ?: 'home1';
        self::$ctl = getenv('FR_CTL') ?: 'kitchen';
    }

    protected function setUp(): void
    {
        $this->c = new Client(self::$shim, self::$token, 10.0);
    }

    protected function tearDown(): void
    {
        $this->c->close();
    }

    private function cmdTopic(): string
    {
        return sprintf('fr/%s/ctl/%s/cmd', self::$home, self::$ctl);
    }

    public function testRequestReturnsTheControllersRealResult(): void
    {
        $events = [];
        $r = $this->c->request(self::$home, self::$ctl, 'lamp_on', [], null,
            function (string $event, array $line) use (&$events): void {
                $events[] = $event;
            });
        $this->assertTrue($r->isOk(), 'status ' . $r->status . ' ' . $r->reason);
        $this->assertSame('ok', $r->status);
        $this->assertSame(0, $r->exitCode);
        $this->assertNull($r->signal);
        $this->assertSame("on\n", $r->stdout);
        $this->assertSame('', $r->stderr);
        $this->assertIsInt($r->durationMs);
        $this->assertMatchesRegularExpression('/^[0-9a-f-]{36}$/', (string) $r->requestId);
        $this->assertSame('lamp_on', $r->result()['action']);
        $this->assertSame(self::$ctl, $r->result()['ctl']);
        $this->assertContains('accepted', $events);
        $this->assertContains('started', $events);
        $this->assertSame('alice', $this->c->user());

        // The issue's "done when", literally: a fresh client, one call, the real result.
        $r2 = (new Client(self::$shim, self::$token))->request(self::$home, self::$ctl, 'lamp_on');
        $this->assertSame('ok', $r2->status);
        $this->assertSame("on\n", $r2->stdout);
        $this->assertNotSame($r->requestId, $r2->requestId);
        $this->assertContains(self::$home, $this->c->homes());
        $this->assertSame(5, $this->c->mqttVersion());   // the test's broker is Mosquitto
    }

    public function testFailingActionIsAFailedResultNotAnException(): void
    {
        $r = $this->c->request(self::$home, self::$ctl, 'fail');
        $this->assertFalse($r->isOk());
        $this->assertSame('failed', $r->status);
        $this->assertSame(4, $r->exitCode);
        $this->assertSame("bad\n", $r->stderr);
        $this->assertNotNull($r->reason);
    }

    public function testUnknownActionIsAResult(): void
    {
        $r = $this->c->request(self::$home, self::$ctl, 'no_such_action');
        $this->assertSame('unknown_action', $r->status);
        $this->assertFalse($r->isOk());
    }

    public function testBadArgumentIsRejected(): void
    {
        $r = $this->c->request(self::$home, self::$ctl, 'slow', ['secs' => 'not a number']);
        $this->assertSame('rejected', $r->status);
        $this->assertNotNull($r->reason);
    }

    public function testWrongTokenThrowsAuthException(): void
    {
        $bad = new Client(self::$shim, 'not-' . self::$token, 10.0);
        try {
            $bad->list();
            $this->fail('a wrong token was accepted');
        } catch (AuthException $e) {
            $this->assertSame('auth', $e->getShimCode());
            $this->assertStringContainsString('shim error auth', $e->getMessage());
        }
        // Without a token only ping works.
        $anon = new Client(self::$shim, null, 10.0);
        $this->assertGreaterThan(1_600_000_000_000, $anon->ping());
        $this->expectException(AuthException::class);
        $anon->get(sprintf('fr/%s/status', self::$home));
    }

    public function testUngrantedHomeIsForbidden(): void
    {
        $other = getenv('FR_OTHER_HOME') ?: 'home2';
        try {
            $this->c->request($other, self::$ctl, 'lamp_on');
            $this->fail('request to an ungranted home was not refused');
        } catch (ForbiddenException $e) {
            $this->assertSame('forbidden', $e->getShimCode());
            $this->assertStringContainsString('shim error forbidden', $e->getMessage());
        }
        $this->expectException(ForbiddenException::class);
        $this->c->list($other);
    }

    public function testGetAndListShowTheControllerOnline(): void
    {
        $this->assertSame('online', $this->c->get(sprintf('fr/%s/status', self::$home)));
        $this->assertSame('online', $this->c->get(sprintf('fr/%s/ctl/%s/status', self::$home, self::$ctl)));
        $info = $this->c->get(sprintf('fr/%s/ctl/%s/info', self::$home, self::$ctl));
        $this->assertSame(self::$ctl, $info['id']);
        $this->assertContains('lamp_on', array_column($info['actions'], 'name'));
        $m = $this->c->getMessage(sprintf('fr/%s/ctl/%s/state/temp', self::$home, self::$ctl));
        $this->assertTrue($m->retained);
        $this->assertIsNumeric($m->payload['value']);

        $homes = $this->c->list(self::$home);
        $this->assertCount(1, $homes);
        $this->assertSame(self::$home, $homes[0]['home']);
        $this->assertSame('online', $homes[0]['status']);
        $ctls = array_column($homes[0]['controllers'], null, 'id');
        $this->assertArrayHasKey(self::$ctl, $ctls);
        $this->assertSame('online', $ctls[self::$ctl]['status']);
        $this->assertArrayHasKey('temp', $ctls[self::$ctl]['state']);
        $this->assertSame([self::$home], array_column($this->c->list(), 'home'));
    }

    /** Polls history($sensor) from $from until $done accepts it (20 s at most). */
    private function historyUntil(string $sensor, int $from, callable $done, int $maxPoints = 1000): History
    {
        $end = microtime(true) + 20;
        do {
            $h = $this->c->history(self::$home, self::$ctl, $sensor, $from, null, $maxPoints);
            if ($done($h)) {
                return $h;
            }
            usleep(200000);
        } while (microtime(true) < $end);
        $this->fail("history of $sensor never got there: " . json_encode($h->points));
    }

    public function testHistoryRecordsWhatTheControllerReported(): void
    {
        $t0 = (int) floor(microtime(true) * 1000);
        // The lamp's state sensor is a string: switch it away and back, two changes the
        // controller reports by itself, and both must be in its timeline in that order.
        $was = $this->c->get(sprintf('fr/%s/ctl/%s/state/lamp', self::$home, self::$ctl))['value'];
        $other = $was === 'on' ? 'off' : 'on';
        foreach ([$other, $was] as $state) {
            $this->assertTrue($this->c->request(self::$home, self::$ctl, 'lamp', ['state' => $state])->isOk());
            $h = $this->historyUntil('lamp', $t0, fn (History $h) => ($h->last()[1] ?? null) === $state);
        }
        $this->assertTrue($h->isRaw());
        $this->assertSame([$other, $was], array_slice(array_column($h->points, 1), -2));
        $ts = array_column($h->points, 0);
        $this->assertGreaterThanOrEqual($t0, $ts[0]);
        $sorted = $ts;
        sort($sorted);
        $this->assertSame($sorted, $ts, 'points oldest first');
        $this->assertSame([self::$home, self::$ctl, 'lamp'], [$h->home, $h->ctl, $h->sensor]);

        // The temperature: numbers, and the latest recorded point is exactly the retained state.
        $h = $this->historyUntil('temp', $t0, function (History $h): bool {
            $last = $this->c->get(sprintf('fr/%s/ctl/%s/state/temp', self::$home, self::$ctl));
            return count($h->points) >= 2 && $h->last() === [$last['ts'], $last['value']];
        });
        foreach ($h->points as $p) {
            $this->assertIsNumeric($p[1]);
        }
        // One point for the range: a bucket [start, mean, min, max] of those numbers.
        $b = $this->c->history(self::$home, self::$ctl, 'temp', $t0, null, 1);
        $this->assertIsInt($b->resolution);
        $this->assertFalse($b->isRaw());
        $this->assertCount(1, $b->points);
        [$start, $mean, $min, $max] = $b->points[0];
        $values = array_column($h->points, 1);
        $this->assertLessThanOrEqual($t0, $start);
        // The bucket reaches to now: readings after $h may widen it, never narrow it.
        $this->assertLessThanOrEqual(min($values), $min);
        $this->assertGreaterThanOrEqual(max($values), $max);
        $this->assertTrue($min <= $mean && $mean <= $max);

        $other = getenv('FR_OTHER_HOME') ?: 'home2';
        try {
            $this->c->history($other, self::$ctl, 'temp');
            $this->fail('history of a home not granted');
        } catch (ForbiddenException $e) {
            $this->assertSame('forbidden', $e->getShimCode());
        }
    }

    public function testGetOfNothingCachedThrowsNotFound(): void
    {
        try {
            $this->c->get(sprintf('fr/%s/ctl/nobody/status', self::$home));
            $this->fail('not_found expected');
        } catch (NotFoundException $e) {
            $this->assertSame('not_found', $e->getShimCode());
        }
    }

    public function testSubscribeYieldsAStateMessageAndBreakUnsubscribes(): void
    {
        $filter = sprintf('fr/%s/ctl/%s/state/#', self::$home, self::$ctl);
        $got = null;
        foreach ($this->c->subscribe($filter, 10.0) as $m) {
            $got = $m;
            break;
        }
        $this->assertInstanceOf(Message::class, $got);
        $this->assertContains($got->topic, [sprintf('fr/%s/ctl/%s/state/temp', self::$home, self::$ctl),
            sprintf('fr/%s/ctl/%s/state/lamp', self::$home, self::$ctl)]);
        $this->assertArrayHasKey('value', $got->payload);
        $this->assertTrue($got->retained);
        // The generator was destroyed by the break: the subscription is gone on the shim (the
        // unsubscribe was answered), and the connection is still good for calls.
        $this->assertGreaterThan(0, $this->c->ping());
    }

    /** README.md's first example, as written, against the demo's kind of controller. */
    public function testReadmeExampleSwitchesTheLamp(): void
    {
        $fr = new Client(self::$shim, self::$token);
        $result = $fr->request(self::$home, self::$ctl, 'lamp', ['state' => 'on']);
        $this->assertSame('ok', $result->status);
        $this->assertSame("on\n", $result->stdout);
        $fr->close();
    }

    private function waitCached(string $topic, string $value): void
    {
        $end = microtime(true) + 15;
        while (($this->c->get($topic)['value'] ?? null) !== $value) {
            $this->assertLessThan($end, microtime(true), "$topic never became $value");
            usleep(100000);
        }
    }

    /**
     * A retained topic's value comes once, marked retained, when the subscription starts; each
     * live change after it comes exactly once and is not retained (docs/shim.md), though
     * frAroundWeb's own cache subscribes to the same topics (issue 11 item 8).
     */
    public function testLiveChangesOfARetainedTopicComeOnceNotRetained(): void
    {
        $topic = sprintf('fr/%s/ctl/%s/state/lamp', self::$home, self::$ctl);
        $this->assertTrue($this->c->request(self::$home, self::$ctl, 'lamp', ['state' => 'off'])->isOk());
        $this->waitCached($topic, 'off');
        $sub = $this->c->subscribe($topic, 15.0);
        $m = $sub->current();
        $this->assertSame(['off', true], [$m->payload['value'], $m->retained]);
        foreach (['on', 'off', 'on'] as $state) {
            $this->assertTrue($this->c->request(self::$home, self::$ctl, 'lamp', ['state' => $state])->isOk());
            $sub->next();
            $m = $sub->current();
            // A second copy of the previous change would show up here instead.
            $this->assertSame([$state, false], [$m->payload['value'], $m->retained]);
        }
        unset($sub);
        $this->assertGreaterThan(0, $this->c->ping());
    }

    public function testSubscriptionAndRequestInterleaveOnOneConnection(): void
    {
        // Every reply of the request lands on the default result topic only if it has no
        // reply route; frAroundWeb sets its own, so watch the command topic instead: the
        // request's own cmd message must show up in the subscription while request() is
        // waiting for its final line on the same connection.
        $sub = $this->c->subscribe($this->cmdTopic(), 10.0);
        $r = $this->c->request(self::$home, self::$ctl, 'lamp_on');
        $this->assertTrue($r->isOk());
        $seen = null;
        foreach ($sub as $m) {
            if (is_array($m->payload) && ($m->payload['id'] ?? null) === $r->requestId) {
                $seen = $m;
                break;
            }
        }
        unset($sub);
        $this->assertNotNull($seen, 'the request\'s command was not seen by the subscription');
        $this->assertSame('lamp_on', $seen->payload['action']);
        $this->assertFalse($seen->retained);
    }

    public function testPublishToCmdRunsTheActionAndForbiddenTopicThrows(): void
    {
        $resultTopic = sprintf('fr/%s/ctl/%s/result', self::$home, self::$ctl);
        $sub = $this->c->subscribe($resultTopic, 10.0);
        $id = 'php-pub-' . bin2hex(random_bytes(8));
        $this->c->publish($this->cmdTopic(), ['id' => $id, 'action' => 'lamp_on', 'progress' => false]);
        $final = null;
        foreach ($sub as $m) {
            if (is_array($m->payload) && ($m->payload['id'] ?? null) === $id) {
                $final = $m->payload;
                break;
            }
        }
        unset($sub);
        $this->assertNotNull($final);
        $this->assertSame('ok', $final['status']);
        $this->assertSame("on\n", $final['stdout']);

        $this->c->publish(sprintf('fr/%s/display', self::$home), 'hello from PHP');
        try {
            $this->c->publish(sprintf('fr/%s/status', self::$home), 'offline');
            $this->fail('publishing to the home status was allowed');
        } catch (ForbiddenException $e) {
            $this->assertSame('forbidden', $e->getShimCode());
        }
        $this->expectException(ForbiddenException::class);
        $this->c->publish($this->cmdTopic(), ['id' => 'x', 'action' => 'lamp_on'], 1, true);
    }

    /**
     * Two kinds of timeout: the action running past its (request) timeout is killed by the
     * controller and comes back as a Result with status "timeout"; the shim giving up waiting
     * for any final result ("wait") is a TimeoutException naming the request id.
     */
    public function testActionTimeoutIsAResultAndShimWaitIsAnException(): void
    {
        $r = $this->c->request(self::$home, self::$ctl, 'slow', ['secs' => '20'], 0.5);
        $this->assertSame('timeout', $r->status);
        $this->assertFalse($r->isOk());

        try {
            $this->c->request(self::$home, self::$ctl, 'slow', ['secs' => '5'], null, null, 0.3);
            $this->fail('no TimeoutException');
        } catch (TimeoutException $e) {
            $this->assertSame('timeout', $e->getShimCode());
            $this->assertMatchesRegularExpression('/^[0-9a-f-]{36}$/', (string) $e->getRequestId());
        }
        // The connection is still usable, and the late final line of that request is dropped.
        $this->assertTrue($this->c->request(self::$home, self::$ctl, 'lamp_on')->isOk());
    }

    public function testAuditListsTheRequest(): void
    {
        $r = $this->c->request(self::$home, self::$ctl, 'lamp_on', [], 5);
        $records = $this->c->audit(50);
        $mine = array_values(array_filter($records, fn (array $x) => ($x['request'] ?? null) === $r->requestId));
        $this->assertCount(1, $mine, 'audit: ' . json_encode($records));
        $this->assertSame('ok', $mine[0]['status']);
        $this->assertSame('alice', $mine[0]['user']);
        $this->assertSame(self::$ctl, $mine[0]['ctl']);
        $this->assertSame('lamp_on', $mine[0]['action']);
        $this->assertCount(1, $this->c->audit(1));
    }

    /**
     * "offline" is a Result too, whichever side says it: the shim itself when its cache knows
     * the controller is offline (FR_OFFLINE_CTL, a controller whose retained status is
     * "offline"; the integration script publishes one), frMhs for a controller it never saw.
     */
    public function testOfflineControllerIsAResult(): void
    {
        $known = getenv('FR_OFFLINE_CTL');
        if ($known !== false && $known !== '') {
            // The script published the retained status before the run; wait (bounded) until
            // frAroundWeb's cache has it.
            $topic = sprintf('fr/%s/ctl/%s/status', self::$home, $known);
            for ($i = 0; $i < 100; $i++) {
                try {
                    if ($this->c->get($topic) === 'offline') {
                        break;
                    }
                } catch (NotFoundException) {
                }
                usleep(100_000);
            }
            $r = $this->c->request(self::$home, $known, 'lamp_on');
            $this->assertSame('offline', $r->status);
            $this->assertFalse($r->raw['ok'], 'expected the shim\'s own offline answer');
            $this->assertNotSame('', (string) $r->reason);
        }
        // frMhs waits for a controller it does not know until the request's deadline, which
        // the shim sets 2 s before its wait ends (docs/topics.md, the request profile).
        $r = $this->c->request(self::$home, 'ghost' . bin2hex(random_bytes(4)), 'lamp_on', wait: 12.0);
        $this->assertSame('offline', $r->status);
        $this->assertFalse($r->isOk());
    }

    public function testLineOverMaxLineIsTooLongAndTheNextCallReconnects(): void
    {
        try {
            $this->c->publish(sprintf('fr/%s/display', self::$home), str_repeat('x', 70000));
            $this->fail('a line over max_line was accepted');
        } catch (FrException $e) {
            $this->assertSame('too_long', $e->getShimCode());
        }
        $this->assertGreaterThan(0, $this->c->ping());
    }

    public function testUnixSocket(): void
    {
        $unix = getenv('FR_SHIM_UNIX');
        if ($unix === false || $unix === '') {
            // No unix socket given: at least the address form is understood and a missing
            // socket is a ConnectionException, not a warning.
            $this->expectException(ConnectionException::class);
            (new Client('unix:///nonexistent/fr-shim.sock', self::$token))->ping();
            return;
        }
        $u = new Client($unix, self::$token, 10.0);
        $this->assertSame('online', $u->get(sprintf('fr/%s/ctl/%s/status', self::$home, self::$ctl)));
        $this->assertTrue($u->request(self::$home, self::$ctl, 'lamp_on')->isOk());
    }
}
