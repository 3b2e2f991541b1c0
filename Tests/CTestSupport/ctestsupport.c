// CTestSupport: mallinfo2 for the leak regression tests.
#include "ctestsupport.h"
#include <malloc.h>

size_t patchd_heap_in_use(void) {
    return mallinfo2().uordblks;
}
