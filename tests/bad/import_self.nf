// EXPECT: 3:1: error: import cycle: tests/bad/import_self.nf -> tests/bad/import_self.nf
// A file that imports itself.
import "import_self.nf";

const X = 1;
