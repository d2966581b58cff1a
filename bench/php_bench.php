<?php
// php_bench: one phase of the PHP bench (bench/run runs each in its own process): what a PHP
// page pays to publish or to run an action through bridge-php (Fr\Bridge\Client over
// frAroundWeb's shim), against what PHP code does without it: exec('mosquitto_pub ...') and
// exec('mosquitto_rr ...'). Phases:
//   pub-kept   publishes on one connection opened (and authenticated) before the clock starts
//   pub-fresh  a new connection per publish, opened, authenticated and closed inside the clock
//   pub-exec   exec(mosquitto_pub) per publish
//   req-kept   requests on one connection opened before the clock starts
//   req-fresh  a new connection per request, inside the clock (what a PHP page pays)
//   req-exec   exec(mosquitto_rr) per request
// A publish phase sends "MARK i" to fr/HOME/display; bench/run counts them where they are
// delivered (a subscriber), so "ok" from the shim is not taken for delivery. Each phase is
// bounded in count and in time. Prints one line "RESULT {json}" with the wall-clock start
// (ms), the count and the rate the PHP side saw.
// Usage: php php_bench.php PHASE SHIM TOKEN HOME CTL ACTION BROKER_PORT MQTT_USER
//            MQTT_PASSWORD_FILE N SECONDS MARK
declare(strict_types=1);

spl_autoload_register(static function (string $class): void {
    $prefix = 'Fr\\Bridge\\';
    if (strncmp($class, $prefix, strlen($prefix)) === 0) {
        $file = dirname(__DIR__) . '/bridge-php/src/' . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
        if (is_file($file)) {
            require $file;
        }
    }
});

if ($argc !== 13) {
    fwrite(STDERR, "usage: php php_bench.php PHASE SHIM TOKEN HOME CTL ACTION BROKER_PORT MQTT_USER MQTT_PASSWORD_FILE N SECONDS MARK\n");
    exit(2);
}
[, $phase, $shim, $token, $home, $ctl, $action, $bport, $muser, $mpwfile, $n, $bound, $mark] = $argv;
$n = (int) $n;
$bound = (float) $bound;
$topic = "fr/$home/display";
$mpw = trim((string) file_get_contents($mpwfile));
$auth = ' -h 127.0.0.1 -p ' . escapeshellarg($bport) . ' -u ' . escapeshellarg($muser) . ' -P ' . escapeshellarg($mpw);
$failed = 0;
$firstError = null;

$note = static function (string $what) use (&$failed, &$firstError): void {
    $failed++;
    $firstError ??= $what;
};

$kept = null;
if ($phase === 'pub-kept' || $phase === 'req-kept') {
    $kept = new Fr\Bridge\Client($shim, $token, 10.0);
    $kept->ping();   // connect + authenticate before the clock starts: a kept connection
}

$one = match ($phase) {
    'pub-kept' => static function (int $i) use ($kept, $topic, $mark): void {
        $kept->publish($topic, "$mark $i", 1);
    },
    'pub-fresh' => static function (int $i) use ($shim, $token, $topic, $mark): void {
        $c = new Fr\Bridge\Client($shim, $token, 10.0);
        $c->publish($topic, "$mark $i", 1);
        $c->close();
    },
    'pub-exec' => static function (int $i) use ($auth, $topic, $mark, $note): void {
        exec('mosquitto_pub' . $auth . ' -q 1 -t ' . escapeshellarg($topic) . ' -m ' . escapeshellarg("$mark $i"), $o, $rc);
        if ($rc !== 0) {
            $note("mosquitto_pub exit $rc");
        }
    },
    'req-kept' => static function (int $i) use ($kept, $home, $ctl, $action, $note): void {
        $res = $kept->request($home, $ctl, $action, [], null, null, 10.0);
        if ($res->status !== 'ok') {
            $note("status $res->status");
        }
    },
    'req-fresh' => static function (int $i) use ($shim, $token, $home, $ctl, $action, $note): void {
        $c = new Fr\Bridge\Client($shim, $token, 10.0);
        $res = $c->request($home, $ctl, $action, [], null, null, 10.0);
        $c->close();
        if ($res->status !== 'ok') {
            $note("status $res->status");
        }
    },
    'req-exec' => static function (int $i) use ($auth, $home, $ctl, $action, $muser, $note): void {
        $id = 'rr-' . bin2hex(random_bytes(8));
        $body = json_encode(['id' => $id, 'action' => $action, 'progress' => false]);
        exec('mosquitto_rr' . $auth . ' -q 1 -W 10 -t ' . escapeshellarg("fr/$home/ctl/$ctl/cmd")
            . ' -e ' . escapeshellarg("fr/$home/reply/$muser/$id") . ' -m ' . escapeshellarg($body), $o, $rc);
        if ($rc !== 0 || !str_contains(implode('', $o), '"status":"ok"')) {
            $note("mosquitto_rr exit $rc: " . implode(' ', $o));
        }
    },
    default => null,
};
if ($one === null) {
    fwrite(STDERR, "php_bench: unknown phase '$phase'\n");
    exit(2);
}

$t0wall = microtime(true);
$t0 = hrtime(true);
$end = $t0 + (int) ($bound * 1e9);
$done = 0;
while ($done < $n && hrtime(true) < $end) {
    try {
        $one($done);
    } catch (Throwable $e) {
        $note(get_class($e) . ': ' . $e->getMessage());
    }
    $done++;
}
$dt = (hrtime(true) - $t0) / 1e9;
$kept?->close();

echo 'RESULT ', json_encode([
    'phase' => $phase,
    'done' => $done,
    'failed' => $failed,
    'first_error' => $firstError,
    't0_wall_ms' => $t0wall * 1000,
    'elapsed_s' => $dt,
    'per_s' => $dt > 0 ? $done / $dt : 0.0,
]), "\n";
exit($failed === 0 && $done === $n ? 0 : 1);
