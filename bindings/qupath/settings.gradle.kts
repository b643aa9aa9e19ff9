// QuPath extension for csranet (CSRA-Net nucleus detection), laid out like
// qupath/qupath-extension-template. Build: ../java/build.sh first (natives), then `gradle build`.
pluginManagement {
    repositories {
        gradlePluginPortal()
        maven {
            url = uri("https://maven.scijava.org/content/repositories/releases")
        }
    }
}

qupath {
    version = "0.6.0"
}

plugins {
    id("io.github.qupath.qupath-extension-settings") version "0.2.1"
}

rootProject.name = "qupath-extension-csranet"
