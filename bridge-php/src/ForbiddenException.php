<?php
declare(strict_types=1);

namespace Fr\Bridge;

/** Shim error "forbidden": the home is not granted to this user, or the topic is not allowed. */
class ForbiddenException extends FrException
{
}
