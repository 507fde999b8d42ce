// EXPECT: 3:14: error: a constant must be a number or an address, not a string
// Constants are numbers or addresses, not strings.
const NAME = "vm1";

// The rest of the file is valid.
const UPLINK0 = 0;
