/* clientid: which MQTT client ids an fr broker account may use (docs/broker.md, "Client ids").
 * Binding ids to accounts keeps one account from taking over another's session, and with it
 * that session's subscriptions and queued messages, by connecting with its client id. */
#ifndef FR_CLIENTID_H
#define FR_CLIENTID_H

#include <stdbool.h>

/* true when the account (the MQTT username) may connect with client id `id`:
 *   <account> or <account>:<anything>   any account (scripts, Home Assistant: "alice:ha")
 *   frMhs-<home>                        the home server's account home-<home>
 *   frAroundWeb-<instance>              frAroundWeb's account fr-web
 *   web-<account>-<page>                the web page (<page> without '-')
 *   auto-<anything>                     ids the broker assigns to clients that sent none
 * Both strings are borrowed; NULL is never allowed. */
bool clientid_allowed(const char *account, const char *id);

#endif
