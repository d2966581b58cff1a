<?php
// PSR-4 autoloader for src/ and tests/ so phpunit runs without Composer (no network here).
declare(strict_types=1);

spl_autoload_register(static function (string $class): void {
    $map = [
        'Fr\\Bridge\\Tests\\' => __DIR__ . '/',
        'Fr\\Bridge\\' => dirname(__DIR__) . '/src/',
    ];
    foreach ($map as $prefix => $dir) {
        if (strncmp($class, $prefix, strlen($prefix)) === 0) {
            $file = $dir . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
            if (is_file($file)) {
                require $file;
            }
            return;
        }
    }
});
