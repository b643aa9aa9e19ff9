package io.csranet.qupath;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import javafx.application.Platform;
import javafx.scene.control.Menu;
import javafx.scene.control.MenuItem;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import qupath.fx.dialogs.Dialogs;
import qupath.lib.common.Version;
import qupath.lib.gui.QuPathGUI;
import qupath.lib.gui.extensions.QuPathExtension;
import qupath.lib.objects.PathObject;
import qupath.lib.plugins.workflow.DefaultScriptableWorkflowStep;

/**
 * Adds Extensions &gt; CSRA-Net to QuPath: "Detect nuclei (bundled model)" runs {@link CsraNet}
 * with its defaults on the selected annotations (or all annotations) in a background thread and
 * records the equivalent script in the image's workflow; "Open detection script" opens a
 * Groovy template in the script editor.
 */
public class CsraNetExtension implements QuPathExtension {
    private static final Logger logger = LoggerFactory.getLogger(CsraNetExtension.class);
    private static final String SCRIPT = "io/csranet/qupath/csranet_detect.groovy";
    /** What the menu command runs, recorded in the workflow so a project can batch it. */
    static final String WORKFLOW_SCRIPT = "def parents = getSelectedObjects().findAll { it.isAnnotation() }\n"
            + "if (parents.isEmpty()) parents = getAnnotationObjects()\n"
            + "def csranet = io.csranet.qupath.CsraNet.builder().build()\n"
            + "try { csranet.detectObjects(getCurrentImageData(), parents) } finally { csranet.close() }";

    private boolean installed;

    @Override
    public void installExtension(QuPathGUI qupath) {
        if (installed) {
            return;
        }
        installed = true;
        Menu menu = qupath.getMenu("Extensions>CSRA-Net", true);
        MenuItem detect = new MenuItem("Detect nuclei (bundled model)");
        detect.setOnAction(e -> detect(qupath));
        MenuItem script = new MenuItem("Open detection script");
        script.setOnAction(e -> openScript(qupath));
        menu.getItems().add(detect);
        menu.getItems().add(script);
    }

    private static void detect(QuPathGUI qupath) {
        var imageData = qupath.getImageData();
        if (imageData == null) {
            Dialogs.showErrorMessage("CSRA-Net", "Open an image first.");
            return;
        }
        var hierarchy = imageData.getHierarchy();
        List<PathObject> parents = new ArrayList<>();
        for (PathObject p : hierarchy.getSelectionModel().getSelectedObjects()) {
            if (p.isAnnotation()) {
                parents.add(p);
            }
        }
        if (parents.isEmpty()) {
            parents.addAll(hierarchy.getAnnotationObjects());
        }
        if (parents.isEmpty()) {
            Dialogs.showErrorMessage("CSRA-Net", "Draw or select an annotation to detect nuclei in.");
            return;
        }
        Thread worker = new Thread(() -> {
            try (CsraNet csranet = CsraNet.builder().build()) {
                csranet.detectObjects(imageData, parents);
                imageData.getHistoryWorkflow()
                        .addStep(new DefaultScriptableWorkflowStep("CSRA-Net nucleus detection", WORKFLOW_SCRIPT));
                int n = 0;
                for (PathObject p : parents) {
                    n += p.getChildObjects().size();
                }
                int total = n;
                Platform.runLater(() -> Dialogs.showInfoNotification("CSRA-Net", total + " nuclei detected"));
            } catch (RuntimeException | Error e) {
                logger.error("CSRA-Net detection failed", e);
                String msg = String.valueOf(e.getMessage());
                Platform.runLater(() -> Dialogs.showErrorMessage("CSRA-Net", msg));
            }
        }, "csranet-detect");
        worker.setDaemon(true);
        worker.start();
    }

    private static void openScript(QuPathGUI qupath) {
        try (InputStream in = CsraNetExtension.class.getClassLoader().getResourceAsStream(SCRIPT)) {
            if (in == null) {
                logger.error("Resource not found: {}", SCRIPT);
                return;
            }
            String script = new String(in.readAllBytes(), StandardCharsets.UTF_8);
            var editor = qupath.getScriptEditor();
            if (editor == null) {
                logger.error("No script editor is available");
                return;
            }
            editor.showScript("CSRA-Net detection", script);
        } catch (IOException e) {
            logger.error("Cannot read {}", SCRIPT, e);
        }
    }

    @Override
    public String getName() {
        return "CSRA-Net";
    }

    @Override
    public String getDescription() {
        return "CSRA-Net nucleus detection and classification for H&E (csranet), from a menu or a Groovy builder.";
    }

    @Override
    public Version getQuPathVersion() {
        return Version.parse("0.6.0");
    }
}
