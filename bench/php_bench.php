<?php
// php_bench: publishes and requests per second through bridge-php (Fr\Bridge\Client over
// frAroundWeb's shim) against what PHP code does without it: exec('mosquitto_pub ...') and
// exec('mosquitto_rr ...') per message. Every loop is bounded in count and in time. Prints one
// line "RESULT {json}". Usage (bench/run passes these):
//   php php_bench.php SHIM TOKEN HOME CTL ACTION BROKER_PORT N N_EXEC SECONDS
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

if ($argc !== 10) {
    fwrite(STDERR, "usage: php php_bench.php SHIM TOKEN HOME CTL ACTION BROKER_PORT N N_EXEC SECONDS\n");
    exit(2);
}
[, $shim, $token, $home, $ctl, $action, $bport, $n, $nexec, $bound] = $argv;
$n = (int) $n;
$nexec = (int) $nexec;
$bound = (float) $bound;
$topic = "fr/$home/display";

/** Runs $fn up to $count times or until $secs pass; returns [done, per second]. */
function measure(int $count, float $secs, callable $fn): array
{
    $t0 = hrtime(true);
    $end = $t0 + (int) ($secs * 1e9);
    $done = 0;
    while ($done < $count && hrtime(true) < $end) {
        $fn($done);
        $done++;
    }
    $dt = (hrtime(true) - $t0) / 1e9;
    return [$done, $dt > 0 ? $done / $dt : 0.0];
}

$out = [];
$client = new Fr\Bridge\Client($shim, $token, 10.0);
$client->ping();   // connect + authenticate outside the measured loops

[$d, $r] = measure($n, $bound, static function (int $i) use ($client, $topic): void {
    $client->publish($topic, "bench $i", 1);
});
$out['bridge_publish'] = ['done' => $d, 'per_s' => $r];

// What a PHP page that opens its own connection per request pays.
[$d, $r] = measure(intdiv($n, 10) + 1, $bound, static function (int $i) use ($shim, $token, $topic): void {
    $c = new Fr\Bridge\Client($shim, $token, 10.0);
    $c->publish($topic, "bench new $i", 1);
    $c->close();
});
$out['bridge_publish_new_conn'] = ['done' => $d, 'per_s' => $r];

$pubcmd = 'mosquitto_pub -h 127.0.0.1 -p ' . escapeshellarg($bport) . ' -q 1 -t ' . escapeshellarg($topic) . ' -m ';
$failed = 0;
[$d, $r] = measure($nexec, $bound, static function (int $i) use ($pubcmd, &$failed): void {
    exec($pubcmd . escapeshellarg("exec $i"), $o, $rc);
    if ($rc !== 0) {
        $failed++;
    }
});
$out['exec_mosquitto_pub'] = ['done' => $d, 'per_s' => $r, 'failed' => $failed];

$notOk = 0;
[$d, $r] = measure($n, $bound, static function (int $i) use ($client, $home, $ctl, $action, &$notOk): void {
    $res = $client->request($home, $ctl, $action, [], null, null, 10.0);
    if ($res->status !== 'ok') {
        $notOk++;
    }
});
$out['bridge_request'] = ['done' => $d, 'per_s' => $r, 'not_ok' => $notOk];

$rrcmd = 'mosquitto_rr -h 127.0.0.1 -p ' . escapeshellarg($bport) . ' -q 1 -W 10 -t '
    . escapeshellarg("fr/$home/ctl/$ctl/cmd") . ' -e ' . escapeshellarg("fr/$home/reply/bench-rr") . ' -m ';
$failed = 0;
[$d, $r] = measure($nexec, $bound, static function (int $i) use ($rrcmd, $action, &$failed): void {
    $id = 'rr-' . bin2hex(random_bytes(8));
    exec($rrcmd . escapeshellarg(json_encode(['id' => $id, 'action' => $action, 'progress' => false])), $o, $rc);
    if ($rc !== 0 || !str_contains(implode('', $o), '"status":"ok"')) {
        $failed++;
    }
});
$out['exec_mosquitto_rr'] = ['done' => $d, 'per_s' => $r, 'failed' => $failed];

echo 'RESULT ', json_encode($out), "\n";
exit($notOk === 0 ? 0 : 1);
