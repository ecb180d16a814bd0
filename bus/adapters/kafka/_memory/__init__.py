"""The parts of `bus.adapters.kafka.memory`: cluster state, groups, clients, faults.

Import `MemoryEngine` from `bus.adapters.kafka.memory`; these modules are private.
"""
