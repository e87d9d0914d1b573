/*
 * kmtool -- test and demo helper, not part of kmigrate.
 *
 *   kmtool seed BOOTSTRAP          build the demo estate; keeps the live
 *                                  group member running until SIGTERM
 *
 * It talks to librdkafka directly so that what it creates is independent of
 * kmigrate's own engine.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "estate.h"

static volatile sig_atomic_t stop;
static void on_sig(int sig)
{
	(void)sig;
	stop = 1;
}

int main(int argc, char **argv)
{
	tk_cluster_t c = {0};

	if (argc != 3 || strcmp(argv[1], "seed")) {
		fprintf(stderr, "usage: kmtool seed BOOTSTRAP\n");
		return 2;
	}
	c.bootstrap = argv[2];
	signal(SIGTERM, on_sig);
	signal(SIGINT, on_sig);
	pid_t member = estate_seed(&c, "");
	printf("seeded: orders, payments (transactions), customers (compacted), "
	       "audit.log; %d ACLs; groups billing, analytics, fraud-detector "
	       "(live member pid %d)\n", ESTATE_NACLS, (int)member);
	fflush(stdout);
	while (!stop)
		pause();
	tk_member_stop(member);
	return 0;
}
