package qupath.lib.plugins.workflow;
public interface WorkflowStep {}
