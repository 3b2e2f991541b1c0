// CTestSupport: C helpers only the tests use.
#ifndef PATCHD_CTESTSUPPORT_H
#define PATCHD_CTESTSUPPORT_H
#include <stddef.h>
/// Bytes of heap in use, all malloc arenas (mallinfo2 uordblks): for the leak tests.
size_t patchd_heap_in_use(void);
#endif
