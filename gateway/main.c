/*
 * portier: entry point. Everything is a sub-command of one binary; see cli.c.
 */
#include "gateway/internal.h"

int main(int argc, char **argv)
{
    return gw_cli_main(argc, argv);
}
