<?php
declare(strict_types=1);

namespace Fr\Bridge;

/** The shim cannot be reached, or the connection broke (the next call reconnects). */
class ConnectionException extends FrException
{
}
