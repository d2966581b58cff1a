<?php
// GET /api/history?home=H&ctl=C&sensor=S&range=24h[&points=N]: a sensor's recorded values for the
// page's charts (docs/web.md), from frAroundWeb through bridge-php's Client::history() with the
// signed-in user's own token, so the shim's per-user home check applies. JSON in, JSON out.
declare(strict_types=1);

require dirname(__DIR__) . '/lib/page.php';

use Fr\Bridge\AuthException;
use Fr\Bridge\ForbiddenException;
use Fr\Bridge\FrException;
use Fr\Bridge\NotFoundException;
use function Fr\Web\{client, session_begin};
use const Fr\Web\NAME_RE;

/** The ranges the page offers, in ms. */
const RANGES = ['1h' => 3600000, '24h' => 86400000, '7d' => 604800000, '1y' => 31536000000];

header('Cache-Control: no-store');
header('Content-Type: application/json; charset=utf-8');

function reply(int $status, array $body): never
{
    http_response_code($status);
    echo json_encode($body, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_PRESERVE_ZERO_FRACTION), "\n";
    exit;
}

if ($_SERVER['REQUEST_METHOD'] !== 'GET') {
    header('Allow: GET');
    reply(405, ['error' => 'GET only']);
}
session_begin();
if (!isset($_SESSION['user'], $_SESSION['secret'])) {
    reply(401, ['error' => 'not signed in']);
}
$q = [];
foreach (['home', 'ctl', 'sensor'] as $k) {
    $v = $_GET[$k] ?? null;
    if (!is_string($v) || !preg_match(NAME_RE, $v)) {
        reply(400, ['error' => "'$k' must be 1..63 of A-Z a-z 0-9 _ -"]);
    }
    $q[$k] = $v;
}
$range = $_GET['range'] ?? '24h';
if (!is_string($range) || !isset(RANGES[$range])) {
    reply(400, ['error' => "'range' must be one of " . implode(', ', array_keys(RANGES))]);
}
$points = $_GET['points'] ?? '600';
if (!is_string($points) || !preg_match('/^[0-9]{1,4}$/', $points) || (int) $points < 10 || (int) $points > 5000) {
    reply(400, ['error' => "'points' must be 10..5000"]);
}
$to = (int) floor(microtime(true) * 1000);
$from = $to - RANGES[$range];
try {
    $h = client($_SESSION['secret'])->history($q['home'], $q['ctl'], $q['sensor'], $from, $to, (int) $points, 10.0);
} catch (AuthException) {
    reply(401, ['error' => 'your password is no longer valid; sign in again']);
} catch (ForbiddenException) {
    reply(403, ['error' => 'home not granted']);
} catch (NotFoundException) {
    reply(404, ['error' => 'this server records no history']);
} catch (FrException $e) {
    error_log('fr: history: ' . $e->getMessage());
    reply(502, ['error' => 'the server\'s history is not reachable right now']);
}
reply(200, ['home' => $h->home, 'ctl' => $h->ctl, 'sensor' => $h->sensor, 'range' => $range,
    'from' => $h->from, 'to' => $h->to, 'resolution' => $h->resolution, 'points' => $h->points]);
