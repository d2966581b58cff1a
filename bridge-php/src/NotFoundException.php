<?php
declare(strict_types=1);

namespace Fr\Bridge;

/** Shim error "not_found": no cached value for a topic, or no such subscription. */
class NotFoundException extends FrException
{
}
