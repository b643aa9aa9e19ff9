/*
 * CSRA-Net nucleus detection from QuPath's script editor WITHOUT the extension: only the
 * csranet Java API (io.csranet), i.e. csranet.jar from bindings/java/build.sh (it carries the
 * native libraries for linux-x86_64 and loads them itself). Put csranet.jar in QuPath's
 * extensions folder (Extensions > Manage extensions > Open extension directory), restart
 * QuPath, open an H&E image, draw or select annotations and run this script.
 *
 * It does what the extension's CsraNet.detectObjects does, in plain sight: read the image tile
 * by tile at ~0.5 µm per pixel, segment the tiles on 4 threads (TiledSegmenter drops nuclei cut
 * by tile edges and merges duplicates from overlapping tiles), and add classified detections.
 */
import io.csranet.CsraModel
import io.csranet.ProgressListener
import io.csranet.TiledSegmenter
import java.nio.file.Path
import qupath.lib.common.ColorTools
import qupath.lib.objects.PathObjects
import qupath.lib.objects.classes.PathClass
import qupath.lib.regions.RegionRequest
import qupath.lib.roi.ROIs

// Settings
def weights = null                // or '/path/to/model.safetensors' (default: bundled model)
double pixelSizeMicrons = 0.5     // resolution to run at
int tileSize = 512, padding = 64, threads = 4

def imageData = getCurrentImageData()
def server = imageData.getServer()
if (!server.isRGB()) {
    println 'CSRA-Net needs an RGB (H&E) image'
    return
}
def cal = server.getPixelCalibration()
double ds = cal.hasPixelSizeMicrons() ? pixelSizeMicrons / cal.getAveragedPixelSizeMicrons() : 1.0
int imageW = Math.ceil(server.getWidth() / ds) as int
int imageH = Math.ceil(server.getHeight() / ds) as int

def parents = getSelectedObjects().findAll { it.isAnnotation() }
if (parents.isEmpty())
    parents = getAnnotationObjects()
if (parents.isEmpty()) {
    println 'Draw or select an annotation first'
    return
}

def model = weights ? CsraModel.load(Path.of(weights)) : CsraModel.createDefault()
try {
    // Class id -> QuPath class, named and coloured as the model's weights say (first letter
    // upper-cased as QuPath writes names: "other" -> "Other", QuPath's own class and colour).
    def pathClasses = (0..<model.numClasses()).collect { int k ->
        String name = model.className(k)
        int[] rgb = model.classColour(k)
        PathClass.fromString(name.substring(0, 1).toUpperCase() + name.substring(1),
                ColorTools.packRGB(rgb[0], rgb[1], rgb[2]))
    }
    def segmenter = TiledSegmenter.builder(model).tileSize(tileSize).padding(padding).threads(threads).build()
    for (parent in parents) {
        def roi = parent.getROI()
        int z = roi.getZ(), t = roi.getT()
        int x0 = Math.floor(roi.getBoundsX() / ds) as int
        int y0 = Math.floor(roi.getBoundsY() / ds) as int
        int x1 = Math.ceil((roi.getBoundsX() + roi.getBoundsWidth()) / ds) as int
        int y1 = Math.ceil((roi.getBoundsY() + roi.getBoundsHeight()) / ds) as int
        // Tiles are requested in downsampled pixels; QuPath reads full-resolution regions.
        def reader = { int x, int y, int w, int h ->
            int fx = Math.min(server.getWidth() - 1, Math.round(x * ds) as int)
            int fy = Math.min(server.getHeight() - 1, Math.round(y * ds) as int)
            int fw = Math.max(1, Math.min(server.getWidth() - fx, Math.round(w * ds) as int))
            int fh = Math.max(1, Math.min(server.getHeight() - fy, Math.round(h * ds) as int))
            server.readRegion(RegionRequest.createInstance(server.getPath(), ds, fx, fy, fw, fh, z, t))
        } as TiledSegmenter.TileReader
        def progress = { int done, int total ->
            println "tile ${done} / ${total}"
            return !Thread.currentThread().isInterrupted()
        } as ProgressListener
        def result = segmenter.segment(reader, imageW, imageH, x0, y0, x1 - x0, y1 - y0, progress)

        def detections = []
        for (nucleus in result.instances()) {
            double cx = nucleus.centroidX() * ds, cy = nucleus.centroidY() * ds
            if (!roi.contains(cx, cy))
                continue
            double[] xs = nucleus.polygonX().collect { it * ds } as double[]
            double[] ys = nucleus.polygonY().collect { it * ds } as double[]
            def pathClass = pathClasses[nucleus.classId()]
            def detection = PathObjects.createDetectionObject(ROIs.createPolygonROI(xs, ys, roi.getImagePlane()), pathClass)
            detection.getMeasurementList().put('Score', nucleus.score())
            detection.getMeasurementList().put('Area px^2', nucleus.area() * ds * ds)
            detections << detection
        }
        parent.clearChildObjects()
        parent.addChildObjects(detections)
        println "${parent}: ${detections.size()} nuclei (${result})"
    }
    fireHierarchyUpdate()
} finally {
    model.close()
}
