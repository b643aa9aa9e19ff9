package qupath.lib.plugins.workflow;
public class DefaultScriptableWorkflowStep implements ScriptableWorkflowStep {
    public final String name;
    public final String script;
    public DefaultScriptableWorkflowStep(final String name, final String script) { this.name = name; this.script = script; }
}
