/* fr_clientid: a Mosquitto 2.0 plugin (plugin API 5) that refuses a CONNECT whose client id does
 * not belong to its username (clientid.h has the rule). It runs before the password file: a
 * refused id is answered "not authorised" whatever the password, and logged with the reason. */
#include <stddef.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include "clientid.h"

/* Mosquitto's plugin entry points have no prototypes in its headers for API 5. */
int mosquitto_plugin_version(int supported_version_count, const int *supported_versions);
int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
			  struct mosquitto_opt *opts, int opt_count);
int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *opts, int opt_count);

static mosquitto_plugin_id_t *fr_plugin_id;

static int fr_clientid_basic_auth(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_basic_auth *ev = event_data;
	const char *id = mosquitto_client_id(ev->client);

	(void)event;
	(void)userdata;
	/* No username: allow_anonymous (false in fr's config) decides. */
	if (!ev->username || !id)
		return MOSQ_ERR_PLUGIN_DEFER;
	if (clientid_allowed(ev->username, id))
		return MOSQ_ERR_PLUGIN_DEFER;
	mosquitto_log_printf(MOSQ_LOG_NOTICE,
			     "fr_clientid: client id '%.80s' refused for account '%.64s' from %s "
			     "(an account may use only its own client ids, docs/broker.md)",
			     id, ev->username, mosquitto_client_address(ev->client));
	return MOSQ_ERR_AUTH;
}

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	for (int i = 0; i < supported_version_count; i++)
		if (supported_versions[i] == 5)
			return 5;
	return -1;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
			  struct mosquitto_opt *opts, int opt_count)
{
	(void)userdata;
	(void)opts;
	(void)opt_count;
	fr_plugin_id = identifier;
	return mosquitto_callback_register(fr_plugin_id, MOSQ_EVT_BASIC_AUTH,
					   fr_clientid_basic_auth, NULL, NULL);
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *opts, int opt_count)
{
	(void)userdata;
	(void)opts;
	(void)opt_count;
	return mosquitto_callback_unregister(fr_plugin_id, MOSQ_EVT_BASIC_AUTH,
					     fr_clientid_basic_auth, NULL);
}
