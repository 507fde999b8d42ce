// EXPECT: 3:1: error: cannot import 'tests/bad/lib/no_such_file.nf': No such file or directory
// The imported file does not exist.
import "lib/no_such_file.nf";

const X = 1;
