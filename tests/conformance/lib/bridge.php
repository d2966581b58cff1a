<?php
// bridge-php (Fr\Bridge\Client, bridge-php/README.md) as the conformance suite drives it:
//   php bridge.php SCENARIO ADDRESS TOKEN [ARG...]
// Each scenario prints one JSON object with what the client returned or threw; the Python suite
// checks it against the README. Only the README's API is used.
declare(strict_types=1);

spl_autoload_register(static function (string $class): void {
    // PSR-4 "Fr\Bridge\" => bridge-php/src/ (README: "require an autoloader")
    $prefix = 'Fr\\Bridge\\';
    if (strncmp($class, $prefix, strlen($prefix)) === 0) {
        $file = getenv('FR_SRC') . '/bridge-php/src/' . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
        if (is_file($file)) {
            require $file;
        }
    }
});

use Fr\Bridge\Client;
use Fr\Bridge\FrException;

[$self, $scenario, $address, $token] = array_pad($argv, 4, null);
$args = array_slice($argv, 4);
$out = [];

function result_fields($r): array
{
    return ['class' => get_class($r), 'status' => $r->status, 'isOk' => $r->isOk(), 'exitCode' => $r->exitCode,
        'signal' => $r->signal, 'reason' => $r->reason, 'stdout' => $r->stdout, 'stderr' => $r->stderr,
        'durationMs' => $r->durationMs, 'requestId' => $r->requestId, 'duplicate' => $r->duplicate,
        'result' => $r->result(), 'raw' => $r->raw];
}

function exc_fields(Throwable $e): array
{
    $o = ['exception' => get_class($e), 'message' => $e->getMessage()];
    if ($e instanceof FrException) {
        $o['shimCode'] = $e->getShimCode();
        $o['shimMessage'] = $e->getShimMessage();
        if (method_exists($e, 'getRequestId')) {
            $o['requestId'] = $e->getRequestId();
        }
    }
    return $o;
}

try {
    $fr = new Client($address, $token === '-' ? null : $token, 10.0);
    switch ($scenario) {
        case 'request':     // HOME CTL ACTION ARGS_JSON [TIMEOUT|-] [WAIT|-]
            $events = [];
            $t = ($args[4] ?? '-') === '-' ? null : (float)$args[4];
            $w = ($args[5] ?? '-') === '-' ? null : (float)$args[5];
            try {
                $r = $fr->request($args[0], $args[1], $args[2], json_decode($args[3], true), $t,
                    function (string $event, array $line) use (&$events) { $events[] = $event; }, $w);
                $out = result_fields($r) + ['events' => $events];
            } catch (Throwable $e) {
                $out = exc_fields($e) + ['events' => $events];
            }
            break;
        case 'readme':      // ARGS: the argument list of the README's first request() call
            $r = eval('return $fr->request(' . $args[0] . ');');
            $out = ['printed' => $r->status . ' ' . $r->stdout];
            break;
        case 'get':         // TOPIC
            try {
                $out = ['value' => $fr->get($args[0])];
                $m = $fr->getMessage($args[0]);
                $out['message'] = ['class' => get_class($m), 'topic' => $m->topic, 'retained' => $m->retained,
                    'payload' => $m->payload];
            } catch (Throwable $e) {
                $out = exc_fields($e);
            }
            break;
        case 'misc':
            $out['ping'] = $fr->ping();
            $out['user'] = $fr->user();
            $out['homes'] = $fr->homes();
            $out['list'] = $fr->list();
            $out['list_home'] = $fr->list($args[0]);
            $out['audit'] = $fr->audit(3);
            break;
        case 'publish':     // TOPIC PAYLOAD_JSON_OR_STRING [RETAIN]
            try {
                $p = json_decode($args[1], true);
                $fr->publish($args[0], is_array($p) ? $p : $args[1], 1, ($args[2] ?? '') === 'retain');
                $out = ['published' => true];
            } catch (Throwable $e) {
                $out = exc_fields($e);
            }
            break;
        case 'subscribe':   // FILTER COUNT IDLE: the first COUNT messages (or until idle), then break
            $msgs = [];
            try {
                foreach ($fr->subscribe($args[0], (float)$args[2]) as $m) {
                    $msgs[] = ['topic' => $m->topic, 'retained' => $m->retained, 'payload' => $m->payload];
                    if (count($msgs) === 1) {
                        fwrite(STDERR, "first\n");     // tells the suite the subscription stands
                    }
                    if (count($msgs) >= (int)$args[1]) {
                        break;
                    }
                }
                $out = ['messages' => $msgs, 'after' => $fr->ping() > 0];
            } catch (Throwable $e) {
                $out = exc_fields($e) + ['messages' => $msgs];
            }
            break;
        case 'auth':        // any call with the given token
            try {
                $out = ['homes' => $fr->homes(), 'list' => $fr->list()];
            } catch (Throwable $e) {
                $out = exc_fields($e);
            }
            break;
        default:
            $out = ['error' => "unknown scenario $scenario"];
    }
} catch (Throwable $e) {
    $out = exc_fields($e) + ['where' => 'outside the scenario'];
}
echo json_encode($out, JSON_UNESCAPED_SLASHES | JSON_PARTIAL_OUTPUT_ON_ERROR), "\n";
