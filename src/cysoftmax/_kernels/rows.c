/* rows.c -- instantiates rows.template.h for float and double. */
#include <math.h>
#include "rows.h"
#include "cs_exp.h"

#define T float
#define S f
#define CS_EXP cs_exp_f
#include "rows.template.h"
#undef T
#undef S
#undef CS_EXP

#define T double
#define S d
#define CS_EXP cs_exp_d
#include "rows.template.h"
#undef T
#undef S
#undef CS_EXP
