/* linktls: the TLS 1.3 side of links -- one SSL_CTX per direction, the PSK derived per
 * controller id and handed to OpenSSL as a session (no certificates, no tickets), and the text
 * of a failed TLS call; see link_int.h and docs/lan-protocol.md. */
#include "link_int.h"

#include "keys.h"
#include "log.h"
#include "name.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

/* The only suite: its hash (SHA-256) must match the one the PSK session is made for. */
#define LINK_CIPHERSUITE "TLS_AES_128_GCM_SHA256"
static const unsigned char link_cipher_id[2] = { 0x13, 0x01 };

/* --- PSK: an SSL_SESSION that carries the derived key as its resumption secret --- */

static SSL_SESSION *link_psk_session(struct link *l, SSL *ssl, const char *id)
{
	uint8_t key[KEYS_LEN];
	SSL_SESSION *s = NULL;
	const SSL_CIPHER *cipher = SSL_CIPHER_find(ssl, link_cipher_id);

	if (!cipher || keys_link_psk(l->ctx->secret, id, key) < 0)
		goto fail;
	if (!(s = SSL_SESSION_new()) || !SSL_SESSION_set1_master_key(s, key, sizeof key) ||
	    !SSL_SESSION_set_cipher(s, cipher) ||
	    !SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION))
		goto fail;
	OPENSSL_cleanse(key, sizeof key);
	return s;
fail:
	OPENSSL_cleanse(key, sizeof key);
	SSL_SESSION_free(s);
	snprintf(l->reject, sizeof l->reject, "cannot make the PSK session");
	return NULL;
}

/* Client: offer identity = the controller id we dial (ours when we are the controller). */
static int link_psk_use(SSL *ssl, const EVP_MD *md, const unsigned char **id, size_t *idlen,
			SSL_SESSION **sess)
{
	struct link *l = SSL_get_app_data(ssl);
	(void)md; /* one suite only, so the digest always matches */
	*sess = link_psk_session(l, ssl, l->peer_id);
	if (!*sess)
		return 0;
	*id = (const unsigned char *)l->peer_id;
	*idlen = strlen(l->peer_id);
	return 1;
}

/* Server: a session for an acceptable identity, none otherwise. With no certificate to fall
 * back on, "none" makes the handshake fail with a handshake_failure alert. */
static int link_psk_find(SSL *ssl, const unsigned char *id, size_t idlen, SSL_SESSION **sess)
{
	struct link *l = SSL_get_app_data(ssl);
	char name[LINK_ID_MAX + 1];

	*sess = NULL;
	if (!name_valid_n((const char *)id, idlen, LINK_ID_MAX)) {
		snprintf(l->reject, sizeof l->reject, "invalid identity (%zu bytes)", idlen);
		return 1;
	}
	memcpy(name, id, idlen);
	name[idlen] = '\0';
	if (l->has_expect && strcmp(name, l->expect_id) != 0) {
		snprintf(l->reject, sizeof l->reject, "identity '%s' refused (expecting '%s')", name,
			 l->expect_id);
		return 1;
	}
	*sess = link_psk_session(l, ssl, name);
	if (!*sess)
		return 0;
	memcpy(l->peer_id, name, idlen + 1);
	return 1;
}

/* --- context --- */

static SSL_CTX *link_ssl_ctx(bool server)
{
	SSL_CTX *s = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	if (!s)
		return NULL;
	if (!SSL_CTX_set_min_proto_version(s, TLS1_3_VERSION) ||
	    !SSL_CTX_set_max_proto_version(s, TLS1_3_VERSION) ||
	    !SSL_CTX_set_ciphersuites(s, LINK_CIPHERSUITE))
		goto fail;
	/* Partial writes keep each SSL_write to one record; the moving buffer lets the output
	 * queue be compacted or grown between a WANT_WRITE and its retry. */
	/* RELEASE_BUFFERS: an idle link gives its 2 x ~17 KiB record buffers back; a home server
	 * holds one link per controller, mostly idle (bench/: discovery memory). */
	SSL_CTX_set_mode(s, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				    SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_cache_mode(s, SSL_SESS_CACHE_OFF);
	if (server) {
		SSL_CTX_set_psk_find_session_callback(s, link_psk_find);
		/* Each connection starts from the PSK again: no resumption tickets. */
		SSL_CTX_set_num_tickets(s, 0);
		SSL_CTX_set_options(s, SSL_OP_NO_TICKET);
	} else {
		SSL_CTX_set_psk_use_session_callback(s, link_psk_use);
		/* No trust store: a server that answers with a certificate instead of the PSK
		 * fails verification; link_up also insists that the PSK was used. */
		SSL_CTX_set_verify(s, SSL_VERIFY_PEER, NULL);
	}
	return s;
fail:
	SSL_CTX_free(s);
	return NULL;
}

struct link_ctx *link_ctx_new(const struct link_ctx_opts *o)
{
	struct link_ctx *c = calloc(1, sizeof *c);
	if (!c) {
		log_warn("link_ctx_new");
		return NULL;
	}
	if (!o->secret) {
		log_warnx("link_ctx_new: no secret");
		goto fail;
	}
	memcpy(c->secret, o->secret, LINK_SECRET_LEN);
	c->ping_interval_ms = o->ping_interval_ms ? o->ping_interval_ms : 10000;
	c->ping_timeout_ms = o->ping_timeout_ms ? o->ping_timeout_ms : 30000;
	c->handshake_timeout_ms = o->handshake_timeout_ms ? o->handshake_timeout_ms : 10000;
	c->max_frame = o->max_frame ? o->max_frame : FRAME_MAX_DEFAULT;
	if (c->max_frame > UINT32_MAX)
		c->max_frame = UINT32_MAX;
	c->max_outq = o->max_outq ? o->max_outq : 1024 * 1024;
	/* One largest frame must always fit in an empty queue. */
	if (c->max_outq < c->max_frame + FRAME_HDR_LEN)
		c->max_outq = c->max_frame + FRAME_HDR_LEN;
	c->cli = link_ssl_ctx(false);
	c->srv = link_ssl_ctx(true);
	if (!c->cli || !c->srv) {
		log_warnx("link_ctx_new: cannot set up TLS: %s",
			  ERR_reason_error_string(ERR_get_error()) ?: "unknown error");
		ERR_clear_error();
		goto fail;
	}
	/* OpenSSL writes to the socket with write(2), without MSG_NOSIGNAL: a peer that resets
	 * must give EPIPE, not kill the agent. */
	signal(SIGPIPE, SIG_IGN);
	return c;
fail:
	link_ctx_free(c);
	return NULL;
}

void link_ctx_free(struct link_ctx *c)
{
	if (!c)
		return;
	SSL_CTX_free(c->cli);
	SSL_CTX_free(c->srv);
	OPENSSL_cleanse(c->secret, sizeof c->secret);
	free(c);
}

/* The reason of a failed SSL call, from the error queue or errno (saved by the caller). */
void linktls_reason(struct link *l, int err, int rc, int saved_errno, char *buf, size_t n)
{
	unsigned long e = ERR_get_error();

	if (l->reject[0])
		snprintf(buf, n, "%s", l->reject);
	else if (e)
		snprintf(buf, n, "%s", ERR_reason_error_string(e) ?: "TLS error");
	else if (err == SSL_ERROR_SYSCALL && rc < 0 && saved_errno)
		snprintf(buf, n, "%s", strerror(saved_errno));
	else if (err == SSL_ERROR_SYSCALL)
		snprintf(buf, n, "connection closed by peer");
	else
		snprintf(buf, n, "TLS error %d", err);
	ERR_clear_error();
}
