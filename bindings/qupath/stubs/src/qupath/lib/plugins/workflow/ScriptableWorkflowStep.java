package qupath.lib.plugins.workflow;
public interface ScriptableWorkflowStep extends WorkflowStep {}
