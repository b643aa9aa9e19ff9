package io.csranet;

/**
 * Progress of a tiled segmentation. Called on the thread that runs the segmentation after each
 * batch of tiles. Return {@code false} to cancel: the call then throws
 * {@link CsraCancelledException}. An exception thrown here also cancels the native call and is
 * rethrown unchanged by the segmentation method.
 *
 * <p>Do not close or reload the model from inside a listener: that would wait for the very
 * segmentation that called it, so it throws {@link IllegalStateException} instead.
 */
@FunctionalInterface
public interface ProgressListener {
    /**
     * @param done tiles finished so far
     * @param total tiles in all
     * @return true to continue, false to cancel
     */
    boolean progress(int done, int total);
}
