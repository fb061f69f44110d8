"""The Xelion cloud PBX REST API emulator (reference §C), served under ``/xelion``."""
