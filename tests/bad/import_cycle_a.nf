// EXPECT: 3:1: error: import cycle: tests/bad/import_cycle_a.nf -> tests/bad/lib/import_cycle_b.nf -> tests/bad/import_cycle_a.nf
// This file imports lib/import_cycle_b.nf, which imports this file back.
import "lib/import_cycle_b.nf";

const CYCLE_A = 1;
