#ifndef CLEW_CLMDB_SHIM_H
#define CLEW_CLMDB_SHIM_H
#include <lmdb.h>
#endif
