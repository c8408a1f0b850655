// The simulator's CUB: the parts cuda/ uses (block reduction, device radix sort of pairs).
#pragma once
#include "am_sim/radix_sort.h"
#include "cub/block/block_reduce.cuh"
