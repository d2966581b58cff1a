<?php
declare(strict_types=1);

namespace Fr\Bridge;

/** Shim error "auth": no token, or the token is not known. */
class AuthException extends FrException
{
}
