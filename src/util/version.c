/* version.c: the version of the library that is linked, for programs that
 * compare it with the header they were compiled against. */
#include "hyperlora.h"

const char *hl_version(void) { return HL_VERSION_STRING; }
