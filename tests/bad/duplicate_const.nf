// EXPECT: 5:7: error: constant 'VNI' is already defined
// The same constant is declared twice.
const VNI = 5001;
const VM_PORT = 2;
const VNI = 5002;
