/* test_fr_sketch: the reference M5Stack sketch, fr_display.ino, built for the host against the
 * M5Stack.h stand-in (tests/tools/m5host) and fed what a real frMhs sent
 * (tests/unit/fixtures/m5stack): what it draws, as text, at each step of the capture, its sync
 * requests (at boot, on a lost frame, on button A), the "no home server" banner after 6 s of
 * silence and the "frMhs stopped" banner after bye. Prints the screens it checks. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "m5host.h"

#define capture(name) fixture_read("m5stack/" name)

static void show(const char *when)
{
	printf("--- M5Stack screen: %s\n%s", when, m5host_screen());
}

/* The bytes of f up to and including the line "FR1 end=<n>". */
static size_t upto_end(const struct fixture *f, int n)
{
	char l[32];
	snprintf(l, sizeof l, "\nFR1 end=%d\n", n);
	const char *e = strstr(f->b, l);
	ck_assert_msg(e != NULL, "no end=%d in the capture", n);
	return (size_t)(e - f->b) + strlen(l);
}

#define assert_shows(s) ck_assert_msg(m5host_shows(s), "screen lacks \"%s\":\n%s", s, m5host_screen())
#define assert_lacks(s) ck_assert_msg(!m5host_shows(s), "screen shows \"%s\":\n%s", s, m5host_screen())

START_TEST(boot)
{
	m5host_boot();
	ck_assert_str_eq(m5host_sent(), "FR1 sync\n");   /* the frame sent on open was lost */
	assert_shows("fr");
	assert_shows("broker: DOWN");
	assert_shows("controllers: 0/0");
	assert_shows("no home server");
	show("after boot, nothing received");
}
END_TEST

START_TEST(real_session)
{
	struct fixture f = capture("session1.bin");
	size_t at = 0, to;
	m5host_boot();
	m5host_sent();
	/* Frame by frame as the capture has them (see capture.sh for the scenario). */
	to = upto_end(&f, 1);
	m5host_receive(f.b, to), at = to;
	assert_shows("home1");
	assert_shows("broker: DOWN");
	assert_lacks("no home server");
	to = upto_end(&f, 5);
	m5host_receive(f.b + at, to - at), at = to;
	assert_shows("broker: up");
	assert_shows("controllers: 1/1");
	assert_shows("c2/fail failed");
	to = upto_end(&f, 7);
	m5host_receive(f.b + at, to - at), at = to;
	assert_shows("two");                          /* "\n" breaks the line */
	assert_shows("lines\\ tab here caf?");        /* tab as a blank, é as ? */
	show("frame 7: escaped text");
	to = upto_end(&f, 8);
	m5host_receive(f.b + at, to - at), at = to;
	assert_shows("???????????");                  /* 台所の電気を消しました, ASCII font */
	assert_lacks("lines");
	show("frame 8: Japanese text with the ASCII font");
	to = upto_end(&f, 9);
	m5host_receive(f.b + at, to - at), at = to;
	assert_shows("?? caf?");                      /* invalid UTF-8 */
	m5host_receive(f.b + at, f.n - at);
	assert_shows("controllers: 0/1");
	assert_lacks("caf");
	ck_assert_str_eq(m5host_sent(), "");          /* nothing was lost: no sync request */
	show("end of session 1");

	/* The heartbeat stops: the banner after 6 s, gone with the next line from frMhs. */
	m5host_advance(6000);
	assert_lacks("no home server");
	m5host_advance(1);
	assert_shows("no home server");
	assert_shows("controllers: 0/1");             /* the last state stays under it */
	show("6 s without a line");
	m5host_receive("FR1 ping=99\n", 12);
	assert_lacks("no home server");
	free(f.b);
}
END_TEST

START_TEST(sync_requests)
{
	struct fixture f = capture("session1.bin");
	m5host_boot();
	m5host_sent();
	m5host_receive(f.b, upto_end(&f, 3));
	unsigned draws = m5host_redraws();
	m5host_receive("FR1 cmd=x\nFR1 end=5\n", 20);   /* end=4 never came */
	ck_assert_str_eq(m5host_sent(), "FR1 sync\n");
	ck_assert_uint_eq(m5host_redraws(), draws + 1);
	assert_shows("x");
	m5host_press_a();
	ck_assert_str_eq(m5host_sent(), "FR1 sync\n");
	m5host_receive("FR1 ping=7\n", 11);
	ck_assert_uint_eq(m5host_redraws(), draws + 1);   /* a ping redraws nothing */
	free(f.b);
}
END_TEST

START_TEST(replug_and_bye)
{
	struct fixture a = capture("session1.bin"), b = capture("session2.bin");
	m5host_boot();
	m5host_receive(a.b, a.n - 5);                 /* the cable is pulled mid-line */
	m5host_receive(b.b, b.n);
	assert_shows("home1");
	assert_shows("broker: DOWN");
	assert_shows("while unplugged");
	assert_shows("frMhs stopped");
	assert_lacks("no home server");
	m5host_advance(60000);                        /* silence after a bye is expected */
	assert_shows("frMhs stopped");
	assert_lacks("no home server");
	show("after the replug, the broker stopped, and frMhs's bye");
	m5host_receive("\nFR1 hello=1\nFR1 home=back\nFR1 end=1\n", 38);
	assert_shows("back");
	assert_lacks("frMhs stopped");
	free(a.b);
	free(b.b);
}
END_TEST

static Suite *sketch_suite(void)
{
	Suite *s = suite_create("fr_display.ino");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, boot);
	tcase_add_test(tc, real_session);
	tcase_add_test(tc, sync_requests);
	tcase_add_test(tc, replug_and_bye);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(sketch_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
