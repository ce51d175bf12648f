"""The controller's gRPC face: AgentService, AdminService, who may call them, and checks on
what they are sent."""
