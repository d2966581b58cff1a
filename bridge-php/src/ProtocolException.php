<?php
declare(strict_types=1);

namespace Fr\Bridge;

/**
 * The server sent something that is not shim protocol (not JSON, not an object, no id, a line
 * longer than the client accepts...). The connection is closed: its state is unknown.
 */
class ProtocolException extends FrException
{
}
