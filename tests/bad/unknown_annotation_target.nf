// EXPECT: 3:1: error: @pin takes one target: nic or hypervisor
// @pin takes nic or hypervisor; 'fpga' is not a placement target.
@pin(fpga)
nf acl {
    action allow() { }
    apply { allow(); }
}
