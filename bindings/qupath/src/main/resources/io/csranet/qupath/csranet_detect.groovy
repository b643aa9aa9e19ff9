/*
 * CSRA-Net nucleus detection with the QuPath extension (Extensions > CSRA-Net).
 *
 * Detects nuclei in the selected annotations (all annotations if none is selected) and
 * replaces their child objects with classified detections carrying "Score", "Area px^2"
 * and (for calibrated images) "Area µm^2" measurements. Run it for a whole project with
 * "Run for project". Interrupting the script (the stop button) stops after the current tile.
 */
import io.csranet.qupath.CsraNet

def parents = getSelectedObjects().findAll { it.isAnnotation() }
if (parents.isEmpty())
    parents = getAnnotationObjects()
if (parents.isEmpty()) {
    println 'Draw or select an annotation first'
    return
}

def csranet = CsraNet.builder()
        // .weights('/path/to/model.safetensors')  // default: the bundled CoNSeP-trained model
        .pixelSize(0.5)      // µm per pixel to run at (the model was trained at ~0.5 µm, 20x)
        .tileSize(512)       // pixels at that resolution, padding included
        .padding(64)         // context around each tile; above the largest nucleus diameter
        .threads(4)          // tiles segmented concurrently
        // class names and colours come from the model (stored with its weights);
        // .classNames('A', 'B', ...) would rename classes 1, 2, ...
        .build()
try {
    csranet.detectObjects(getCurrentImageData(), parents)
} finally {
    csranet.close()
}
println "CSRA-Net: ${parents.sum { it.getChildObjects().size() }} nuclei in ${parents.size()} annotation(s)"
