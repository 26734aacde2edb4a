"""cocotb testbenches of the RTL in `rtl/` and the helpers that build and run them.

`systolic_tb` is the cocotb test module (loaded by the simulator, so not named ``test_*``);
`tb_components` holds its Driver, Monitor, Model and Checker; `runner` exports the Verilog and
drives `cocotb_tools.runner` (Icarus by default, ``SIM=verilator`` too).
"""
