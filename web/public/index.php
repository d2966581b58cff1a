<?php
// fr's web page: sign-in, then the user's homes and controllers rendered from frAroundWeb's cache;
// app.js connects to the broker (MQTT over wss) with the same secret and keeps everything live.
declare(strict_types=1);

require dirname(__DIR__) . '/lib/page.php';

use Fr\Bridge\AuthException;
use Fr\Bridge\FrException;
use function Fr\Web\{client, csrf_ok, h, render_home, session_begin, sign_in, sign_out};

header('Cache-Control: no-store');

// nginx asks here before it lets a browser's WebSocket through to the broker (auth_request on
// /mqtt, web/nginx/fr-site.conf.template): only a signed-in session passes, so an anonymous peer
// never sends the broker a byte on that path (Mosquitto 2.0.11 allocates whatever length a
// websocket CONNECT declares: docs/security.md). No session is created or changed here.
if (($_SERVER['FR_AUTH_REQUEST'] ?? '') === 'mqtt') {
    $sid = $_COOKIE['__Host-fr'] ?? null;
    $ok = false;
    if (is_string($sid) && preg_match('/^[A-Za-z0-9,-]{48}$/', $sid)) {
        ini_set('session.use_strict_mode', '1');
        ini_set('session.use_cookies', '0');
        session_name('__Host-fr');
        session_id($sid);
        session_start(['read_and_close' => true]);
        $ok = is_string($_SESSION['user'] ?? null);
    }
    http_response_code($ok ? 204 : 403);
    exit;
}

header('Content-Type: text/html; charset=utf-8');
session_begin();

$error = null;
if ($_SERVER['REQUEST_METHOD'] === 'POST') {
    $action = $_POST['action'] ?? '';
    if (!csrf_ok()) {
        $error = 'Your session expired; please try again.';
    } elseif ($action === 'signin') {
        $u = $_POST['username'] ?? '';
        $p = $_POST['password'] ?? '';
        $error = sign_in(is_string($u) ? $u : '', is_string($p) ? $p : '');
        if ($error === null) {
            header('Location: /', true, 303);
            exit;
        }
    } elseif ($action === 'signout') {
        sign_out();
        header('Location: /', true, 303);
        exit;
    }
}

$user = $_SESSION['user'] ?? null;
$homes = [];
$notice = null;
// The MQTT version the page speaks: frAroundWeb's with the same broker (5, or 4 = 3.1.1); ''
// when unknown, and then app.js tries 5 and falls back to 3.1.1 by itself.
$mqttVersion = '';
if ($user !== null) {
    try {
        $fr = client($_SESSION['secret']);
        $homes = $fr->list();
        $mqttVersion = (string) ($fr->mqttVersion() ?? '');
    } catch (AuthException) {
        // The secret was changed or the user removed: the session is worthless.
        sign_out();
        session_begin();
        $user = null;
        $error = 'Your password is no longer valid; please sign in again.';
    } catch (FrException $e) {
        error_log('fr: list: ' . $e->getMessage());
        $notice = 'The server\'s cache is not reachable; the page fills in once the live connection is up.';
        foreach ($_SESSION['homes'] ?? [] as $hid) {
            $homes[] = ['home' => $hid, 'status' => null, 'controllers' => []];
        }
    }
}
$csrf = $_SESSION['csrf'];
?>
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title><?= $user === null ? 'Sign in — fr' : 'Homes — fr' ?></title>
<link rel="stylesheet" href="/vendor/uPlot.min.css">
<link rel="stylesheet" href="/style.css">
<link rel="icon" href="/favicon.svg" type="image/svg+xml">
<?php if ($user !== null): ?>
<script src="/vendor/uPlot.iife.min.js" defer></script>
<script type="module" src="/app.js"></script>
<?php endif ?>
</head>
<body>
<?php if ($user === null): ?>
<main class="signin">
  <h1>fr</h1>
  <form method="post" action="/" class="card">
    <h2>Sign in</h2>
    <?php if ($error !== null): ?><p class="error" role="alert"><?= h($error) ?></p><?php endif ?>
    <input type="hidden" name="csrf" value="<?= h($csrf) ?>">
    <input type="hidden" name="action" value="signin">
    <label for="username">User name</label>
    <input id="username" name="username" type="text" autocomplete="username" autocapitalize="none"
           spellcheck="false" required maxlength="63" pattern="[A-Za-z0-9_\-]{1,63}"
           value="<?= h(is_string($_POST['username'] ?? null) ? $_POST['username'] : '') ?>">
    <label for="password">Password</label>
    <input id="password" name="password" type="password" autocomplete="current-password" required>
    <button type="submit">Sign in</button>
  </form>
</main>
<?php else: ?>
<header class="top">
  <h1>fr</h1>
  <div id="conn" class="conn" data-state="connecting" role="status" aria-live="polite">
    <span class="dot" aria-hidden="true"></span><span class="conn-text">Live updates: connecting…</span>
  </div>
  <form method="post" action="/" class="signout">
    <input type="hidden" name="csrf" value="<?= h($csrf) ?>">
    <span class="who">Signed in as <strong><?= h($user) ?></strong></span>
    <button type="submit" name="action" value="signout">Sign out</button>
  </form>
</header>
<main id="app" data-user="<?= h($user) ?>" data-secret="<?= h($_SESSION['secret']) ?>"
      data-homes="<?= h(implode(',', $_SESSION['homes'] ?? [])) ?>" data-prefix="fr"
      data-mqtt-version="<?= h($mqttVersion) ?>">
  <?php if ($notice !== null): ?><p class="notice" role="status"><?= h($notice) ?></p><?php endif ?>
  <?php if ($homes === []): ?><p>No home is granted to you yet.</p><?php endif ?>
  <?php foreach ($homes as $home) { echo render_home($home), "\n"; } ?>
</main>
<?php endif ?>
</body>
</html>
