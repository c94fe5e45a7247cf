/* The shim is header-only (static inline); this file gives SwiftPM a source to build the target. */
#include "CShim.h"
