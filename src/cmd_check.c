/* Placeholder until the compatibility gate lands: unknown is NO-GO. */
#include "common.h"

int cmd_check(cli_t *cli, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	snprintf(cli->errstr, sizeof(cli->errstr),
		 "the compatibility gate is not built yet: verdict unknown, "
		 "which is NO-GO");
	return cli_fail(cli, KM_ERR_NOGO);
}
