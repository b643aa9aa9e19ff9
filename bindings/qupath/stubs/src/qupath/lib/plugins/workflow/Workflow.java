package qupath.lib.plugins.workflow;
public class Workflow {
    public final java.util.List<WorkflowStep> steps = new java.util.ArrayList<>();
    public synchronized void addStep(final WorkflowStep step) { steps.add(step); }
}
