/* Unit tests of clientid: the broker plugin's rule binding client ids to accounts. */
#include "clientid.h"

#include <check.h>
#include <stdlib.h>

START_TEST(test_own_ids)
{
	ck_assert(clientid_allowed("alice", "alice"));
	ck_assert(clientid_allowed("alice", "alice:ha"));
	ck_assert(clientid_allowed("alice", "alice:"));
	ck_assert(clientid_allowed("home-demo", "frMhs-demo"));
	ck_assert(clientid_allowed("home-demo", "home-demo"));
	ck_assert(clientid_allowed("fr-web", "frAroundWeb-web1"));
	ck_assert(clientid_allowed("alice", "web-alice-1a2b3c4d"));
	ck_assert(clientid_allowed("al-ice", "web-al-ice-1a2b3c4d"));
	ck_assert(clientid_allowed("bob", "auto-0F3C2B1A-1111-2222-3333-444455556666"));
}
END_TEST

START_TEST(test_other_accounts_ids)
{
	/* The takeover of issue 12: a user of another home using the home server's id. */
	ck_assert(!clientid_allowed("bob", "frMhs-demo"));
	ck_assert(!clientid_allowed("home-other", "frMhs-demo"));
	ck_assert(!clientid_allowed("home-demo", "frMhs-demo2"));
	ck_assert(!clientid_allowed("home-demo", "frMhs-dem"));
	ck_assert(!clientid_allowed("bob", "frAroundWeb-web1"));
	ck_assert(!clientid_allowed("home-demo", "frAroundWeb-web1"));
	ck_assert(!clientid_allowed("bob", "web-alice-1a2b3c4d"));
	/* "alice" cannot claim the ids of "alice-bob", nor the other way round. */
	ck_assert(!clientid_allowed("alice", "web-alice-bob-1a2b3c4d"));
	ck_assert(!clientid_allowed("alice-bob", "web-alice-1a2b3c4d"));
	ck_assert(!clientid_allowed("alice", "alice-bob"));
	ck_assert(!clientid_allowed("alice", "alice-bob:x"));
	ck_assert(!clientid_allowed("alice-bob", "alice:x"));
	ck_assert(!clientid_allowed("alice", "alic"));
	ck_assert(!clientid_allowed("alice", "web-alice-"));
	ck_assert(!clientid_allowed("alice", "web-alice"));
	/* Ids nobody owns (mosquitto_sub's default mosq-..., fixed names) are refused. */
	ck_assert(!clientid_allowed("alice", "mosq-abcdef"));
	ck_assert(!clientid_allowed("alice", ""));
	ck_assert(!clientid_allowed("", ""));
	ck_assert(!clientid_allowed(NULL, "alice"));
	ck_assert(!clientid_allowed("alice", NULL));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("clientid");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_own_ids);
	tcase_add_test(tc, test_other_accounts_ids);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
