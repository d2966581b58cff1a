<?php
// The web page's server side: session, sign-in against frAroundWeb's shim, and the HTML of the
// homes and controllers (the first paint is complete; web/public/app.js keeps it live over MQTT).
declare(strict_types=1);

namespace Fr\Web;

use Fr\Bridge\AuthException;
use Fr\Bridge\Client;
use Fr\Bridge\FrException;

// bridge-php without Composer: PSR-4 for Fr\Bridge\ from FR_BRIDGE or the checkout's bridge-php/.
spl_autoload_register(static function (string $class): void {
    $prefix = 'Fr\\Bridge\\';
    if (strncmp($class, $prefix, strlen($prefix)) !== 0) {
        return;
    }
    $base = getenv('FR_BRIDGE') ?: dirname(__DIR__, 2) . '/bridge-php/src';
    $file = $base . '/' . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
    if (is_file($file)) {
        require $file;
    }
});

const NAME_RE = '/^[A-Za-z0-9_-]{1,63}$/';

function h(mixed $s): string
{
    return htmlspecialchars((string) $s, ENT_QUOTES | ENT_SUBSTITUTE | ENT_HTML5, 'UTF-8');
}

function shim_address(): string
{
    return getenv('FR_SHIM') ?: 'unix:///run/fr/shim.sock';
}

function client(string $secret): Client
{
    return new Client(shim_address(), $secret, 5.0);
}

/** The session cookie: HttpOnly, Secure, SameSite=Strict, this host only, gone with the browser. */
function session_begin(): void
{
    ini_set('session.use_strict_mode', '1');
    ini_set('session.use_only_cookies', '1');
    ini_set('session.cookie_httponly', '1');
    ini_set('session.cookie_secure', '1');
    ini_set('session.cookie_samesite', 'Strict');
    ini_set('session.sid_length', '48');
    ini_set('session.sid_bits_per_character', '6');
    session_name('__Host-fr');
    session_set_cookie_params(['lifetime' => 0, 'path' => '/', 'secure' => true,
        'httponly' => true, 'samesite' => 'Strict']);
    session_start();
    if (empty($_SESSION['csrf'])) {
        $_SESSION['csrf'] = bin2hex(random_bytes(16));
    }
}

function csrf_ok(): bool
{
    return is_string($_POST['csrf'] ?? null) && hash_equals($_SESSION['csrf'], $_POST['csrf']);
}

/**
 * Signs in with the one secret of the user: it is the shim token, so the shim's answer names
 * the user it belongs to, which must be the name typed. null on success, else the message.
 */
function sign_in(string $user, string $secret): ?string
{
    if (!preg_match(NAME_RE, $user) || $secret === '' || strlen($secret) > 256) {
        return 'Wrong user name or password.';
    }
    try {
        $c = client($secret);
        $who = $c->user();
        $homes = $c->homes();
        $c->close();
    } catch (AuthException) {
        usleep(500000); // a guess costs time; the shim also closes after 5 failures
        return 'Wrong user name or password.';
    } catch (FrException $e) {
        error_log('fr: sign-in: shim: ' . $e->getMessage());
        return 'The server cannot check your password right now; try again in a moment.';
    }
    if ($who === null || !hash_equals($who, $user)) {
        usleep(500000);
        return 'Wrong user name or password.';
    }
    session_regenerate_id(true);
    $_SESSION['user'] = $who;
    $_SESSION['secret'] = $secret;
    $_SESSION['homes'] = array_values(array_filter($homes, static fn ($h) => is_string($h) && preg_match(NAME_RE, $h)));
    $_SESSION['csrf'] = bin2hex(random_bytes(16));
    return null;
}

function sign_out(): void
{
    $_SESSION = [];
    $p = session_get_cookie_params();
    setcookie(session_name(), '', ['expires' => 1, 'path' => $p['path'], 'secure' => true,
        'httponly' => true, 'samesite' => 'Strict']);
    session_destroy();
}

/** A simple alternation (on|off|toggle) becomes a select; anything else a text input. */
function choices(string $pattern): ?array
{
    if (!preg_match('/^[A-Za-z0-9_.-]+(\|[A-Za-z0-9_.-]+)+$/', $pattern)) {
        return null;
    }
    return explode('|', $pattern);
}

function fmt_ms(mixed $ms): string
{
    if (!is_int($ms) && !is_float($ms)) {
        return '';
    }
    return gmdate('Y-m-d\TH:i:s\Z', (int) ($ms / 1000));
}

function fmt_value(mixed $v): string
{
    if (is_array($v)) {
        $v = $v['value'] ?? null;
    }
    if (is_bool($v)) {
        return $v ? 'true' : 'false';
    }
    return $v === null ? '—' : (string) $v;
}

function render_action(string $home, string $ctl, array $a): string
{
    $name = (string) ($a['name'] ?? '');
    if (!preg_match(NAME_RE, $name)) {
        return '';
    }
    $fid = "a-$home-$ctl-$name";
    $o = '<form class="action" data-action="' . h($name) . '" data-timeout="' . h((float) ($a['timeout'] ?? 30)) . '">'
        . '<fieldset><legend>' . h($name) . '</legend><div class="args">';
    foreach (($a['args'] ?? []) as $arg) {
        $an = (string) ($arg['name'] ?? '');
        if (!preg_match(NAME_RE, $an)) {
            continue;
        }
        $pat = (string) ($arg['pattern'] ?? '');
        $def = isset($arg['default']) ? (string) $arg['default'] : null;
        $id = "$fid-$an";
        $o .= '<div class="arg"><label for="' . h($id) . '">' . h($an) . '</label>';
        $ch = choices($pat);
        if ($ch !== null) {
            $o .= '<select id="' . h($id) . '" name="' . h($an) . '">';
            foreach ($ch as $c) {
                $o .= '<option' . ($c === $def ? ' selected' : '') . '>' . h($c) . '</option>';
            }
            $o .= '</select>';
        } else {
            $o .= '<input id="' . h($id) . '" name="' . h($an) . '" type="text" autocomplete="off"'
                . ($pat !== '' ? ' pattern="' . h($pat) . '" title="' . h("must match $pat") . '"' : '')
                . ($def !== null ? ' value="' . h($def) . '"' : ' required') . '>';
        }
        $o .= '</div>';
    }
    $o .= '</div><button type="submit">Run ' . h($name) . '</button>'
        . '<p class="progress" role="status" aria-live="polite" data-field="progress"></p>'
        . '<div class="result" aria-live="polite" aria-atomic="true" data-field="result"></div>'
        . '</fieldset></form>';
    return $o;
}

function render_controller(string $home, array $c): string
{
    $id = (string) ($c['id'] ?? '');
    if (!preg_match(NAME_RE, $id)) {
        return '';
    }
    $info = is_array($c['info'] ?? null) ? $c['info'] : [];
    $status = is_string($c['status'] ?? null) ? $c['status'] : 'unknown';
    $reason = $status === 'offline' ? (string) ($info['offline_reason'] ?? '') : '';
    $title = (string) ($info['name'] ?? $id);
    $o = '<article class="ctl" data-ctl="' . h($id) . '" data-status="' . h($status) . '" aria-labelledby="c-' . h("$home-$id") . '">'
        . '<h3 id="c-' . h("$home-$id") . '">' . h($title) . ' <span class="id">' . h($id) . '</span></h3>'
        . '<p class="state"><span class="badge" data-field="status">' . h($status) . '</span>'
        . ' <span class="reason" data-field="reason">' . h($reason) . '</span></p>'
        . '<p class="meta">Last seen <time data-field="last-seen" datetime="' . h(fmt_ms($info['last_seen'] ?? null)) . '">'
        . h(fmt_ms($info['last_seen'] ?? null) ?: '—') . '</time></p>'
        . '<dl class="sensors" data-field="sensors">';
    $state = is_array($c['state'] ?? null) ? $c['state'] : [];
    $sensors = [];
    foreach (($info['sensors'] ?? []) as $s) {
        if (is_string($s['name'] ?? null)) {
            $sensors[$s['name']] = true;
        }
    }
    foreach (array_keys($state) as $s) {
        $sensors[(string) $s] = true;
    }
    foreach (array_keys($sensors) as $s) {
        if (!preg_match(NAME_RE, $s)) {
            continue;
        }
        $o .= '<div class="sensor" data-sensor="' . h($s) . '"><dt>' . h($s) . '</dt><dd data-field="value">'
            . h(fmt_value($state[$s] ?? null)) . '</dd></div>';
    }
    $o .= '</dl><div class="actions">';
    foreach (($info['actions'] ?? []) as $a) {
        if (is_array($a)) {
            $o .= render_action($home, $id, $a);
        }
    }
    return $o . '</div></article>';
}

function render_home(array $home): string
{
    $id = (string) ($home['home'] ?? '');
    if (!preg_match(NAME_RE, $id)) {
        return '';
    }
    $status = is_string($home['status'] ?? null) ? $home['status'] : 'unknown';
    // A stale home (its heartbeats stopped, docs/shim.md) shows why.
    $reason = $status === 'stale' && is_string($home['reason'] ?? null) ? $home['reason'] : '';
    $o = '<section class="home" data-home="' . h($id) . '" data-status="' . h($status) . '" aria-labelledby="h-' . h($id) . '">'
        . '<h2 id="h-' . h($id) . '">Home ' . h($id) . ' <span class="badge" data-field="home-status">' . h($status) . '</span>'
        . ' <span class="reason" data-field="home-reason">' . h($reason) . '</span></h2>'
        . '<div class="ctls">';
    $ctls = is_array($home['controllers'] ?? null) ? $home['controllers'] : [];
    usort($ctls, static fn ($a, $b) => strcmp((string) ($a['id'] ?? ''), (string) ($b['id'] ?? '')));
    foreach ($ctls as $c) {
        if (is_array($c)) {
            $o .= render_controller($id, $c);
        }
    }
    return $o . '</div></section>';
}
