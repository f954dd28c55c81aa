/* SPDX-License-Identifier: Apache-2.0 */
/* cfg-example.c — print the example config file (or --help's key list) from
 * config.c's key table.  `make conf` writes config/trident.conf with it;
 * tests/unit/test_config.c checks the committed file against the same output. */
#include <stdio.h>
#include <string.h>

#include "config.h"

int main(int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "--help-keys"))
        cfg_print_help(stdout);
    else if (argc == 1)
        cfg_write_example(stdout);
    else {
        fprintf(stderr, "usage: cfg-example [--help-keys]\n");
        return CFG_EXIT_USAGE;
    }
    return fflush(stdout) ? 1 : 0;
}
